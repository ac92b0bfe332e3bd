"""The AI models' findings in the store, and the people who decide about them.

What the Law on Artificial Intelligence (2026) asks, and where it is kept here:

- **AI output is labelled.** :func:`save_findings` refuses a finding that does not carry the AI
  label, its model and version, score, threshold, confidence, contributions summing to 1, and
  the typical and actual values; the alert a confirmation makes says it came from a model.
- **A person decides.** A finding is never an alert: :func:`confirm` (with a reason) makes one,
  in the same organisation, so from then on it joins incidents like any alert; :func:`reject`
  (with a reason) records the pattern, which the detectors stop reporting
  (:func:`rejected_patterns`). A finding is decided once: the decision is a conditional
  ``UPDATE ... WHERE status = 'pending'``, so of two people deciding at the same instant one
  wins and the other is told.
- **People may object.** :func:`exclude` records an objection as keyed hashes of the person's
  identifiers; :func:`excluded_identifiers` and :func:`is_excluded` let the pipeline keep them
  out of every model from then on.
- **Every decision is in the audit trail**: the model's (``finding.created``, one entry per
  finding, written in bulk), and the people's (``finding.confirmed``, ``finding.rejected``,
  ``finding.excluded``, ``model.registered``, ``model.approved``, ``model.retrained``). The
  trail holds ids, model names and figures, never identifiers or the free-text reasons (they
  may name people); those stay in the finding's row.

Service functions take ``*, session`` and never commit; the caller's unit of work does.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, case, func, select, update
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.errors import QorganError
from qorgan.core.identifiers import identifier_spellings, normalise_identifier
from qorgan.core.settings import Environment, Settings, var_secret
from qorgan.core.timeutil import parse_time
from qorgan.incidents import alerts as alert_store
from qorgan.incidents.finding_models import (
    AnomalyExclusion,
    AnomalyFinding,
    ModelRecord,
    RejectedPattern,
)
from qorgan.incidents.models import StoredAlert
from qorgan.incidents.schemas import AlertIn, _json_object

#: Longest reason a person may give for a decision (characters).
MAX_REASON = 2000
#: Largest finding accepted, as compact JSON.
MAX_FINDING_BYTES = 64 * 1024
#: Largest number of contributions and examples a finding may list.
MAX_CONTRIBUTIONS = 50
MAX_EXAMPLES = 5
#: How close to 1 the contributions' shares must sum (they travel as JSON floats).
SHARE_TOLERANCE = 1e-6
#: The level an AI finding's alert gets: the model proposes, a person confirmed; triage may
#: change nothing of it, but the level sorts it among the rules' alerts.
ALERT_LEVEL = "medium"
#: The tag that marks an alert made from an AI finding (the inbox can filter on it).
AI_TAG = "ai.generated"
#: Where an objection comes from.
ORIGINS = ("citizen", "request")
#: The detectors' entity keys and the event fields the alert store reads them from.
_ENTITY_ALIASES = {"source_ip": "src_ip", "destination_ip": "dst_ip"}
_HEX64 = re.compile(r"[0-9a-f]{64}")


class FindingError(QorganError):
    """A finding, decision, objection or register entry was refused; the message is fit for
    the user."""


class NotFound(FindingError):
    """No such finding (or model) among those the caller may see (the web layer answers 404)."""


class AlreadyDecided(FindingError):
    """The finding was decided before (perhaps a moment ago, by someone else)."""


# --------------------------------------------------------------------------- validation


def _text(value: Any, what: str, limit: int, *, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise FindingError(f"{what} is required", source="finding")
    if len(value) > limit:
        raise FindingError(f"{what} is longer than {limit} characters", source="finding")
    return value


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FindingError(f"{what} is not a finite number", source="finding")
    return float(value)


def validate(finding: Mapping[str, Any]) -> dict[str, Any]:
    """``finding`` (a ``Finding.to_dict()``) checked against the finding contract, as plain
    JSON ready to store; :class:`FindingError` says what is wrong otherwise.

    The store checks again what the detectors' ``Finding`` checks, because findings also
    arrive as JSON (hunts' output files, other processes): a finding without its AI label, or
    whose explanation does not add up, never reaches an analyst.
    """
    if not isinstance(finding, Mapping):
        raise FindingError("a finding is a JSON object", source="finding")
    if finding.get("ai_generated") is not True:
        raise FindingError("a finding must say it was produced by an AI model", source="finding")
    _text(finding.get("label"), "the AI label", 1000)
    model = _text(finding.get("model"), "the model's name", 200)
    _text(finding.get("version"), "the model's version", 100)
    _text(finding.get("detector"), "the detector", 100)
    pattern = _text(finding.get("pattern"), "the pattern", 4000)
    score = _number(finding.get("score"), "score")
    threshold = _number(finding.get("threshold"), "threshold")
    confidence = _number(finding.get("confidence"), "confidence")
    if score < threshold:
        raise FindingError(f"score {score} is below the threshold {threshold}", source="finding")
    if not 0.0 <= confidence <= 1.0:
        raise FindingError(f"confidence {confidence} is outside [0, 1]", source="finding")
    parts = finding.get("contributions")
    if not isinstance(parts, list) or not parts:
        raise FindingError("a finding needs its contributions", source="finding")
    if len(parts) > MAX_CONTRIBUTIONS:
        raise FindingError(f"at most {MAX_CONTRIBUTIONS} contributions", source="finding")
    total = 0.0
    for part in parts:
        if not isinstance(part, Mapping):
            raise FindingError("a contribution is a JSON object", source="finding")
        _text(part.get("feature"), "a contribution's feature", 200)
        share = _number(part.get("share"), "a contribution's share")
        if share <= 0:
            raise FindingError("every contribution's share is positive", source="finding")
        if "typical" not in part or "actual" not in part:
            raise FindingError(
                "every contribution gives the typical and the actual value", source="finding"
            )
        total += share
    if abs(total - 1.0) > SHARE_TOLERANCE:
        raise FindingError("contributions' shares must sum to 1", source="finding")
    examples = finding.get("examples", [])
    if not isinstance(examples, list) or len(examples) > MAX_EXAMPLES:
        raise FindingError(f"examples are a list of at most {MAX_EXAMPLES}", source="finding")
    identifiers = finding.get("identifiers", [])
    if not isinstance(identifiers, list) or not all(isinstance(i, str) for i in identifiers):
        raise FindingError("identifiers are a list of texts", source="finding")
    entity = finding.get("entity", {})
    if not isinstance(entity, Mapping):
        raise FindingError("the entity is a JSON object", source="finding")
    time = finding.get("time")
    if time is not None and parse_time(time) is None:
        raise FindingError("the finding's time is not ISO 8601", source="finding")
    expected = hashlib.sha256(f"{model}\x1f{pattern}".encode()).hexdigest()
    if finding.get("fingerprint") != expected:
        raise FindingError("the fingerprint does not match the model and pattern", source="finding")
    try:
        # Plain JSON, size-bounded, with NUL shown as U+2400 (PostgreSQL cannot store it).
        return _json_object(dict(finding), "the finding", MAX_FINDING_BYTES)
    except ValueError as exc:
        raise FindingError(str(exc), source="finding") from None


def clean_reason(reason: Any) -> str:
    """The reason a person gave, stripped; refused when blank, too long or not storable (NUL,
    unpaired surrogates)."""
    if not isinstance(reason, str) or not reason.strip():
        raise FindingError("a decision needs a reason", source="reason")
    text = reason.strip()
    if len(text) > MAX_REASON:
        raise FindingError(f"a reason has at most {MAX_REASON} characters", source="reason")
    if "\x00" in text:
        raise FindingError("a reason must not contain NUL characters", source="reason")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise FindingError(
            "a reason must not contain unpaired surrogate characters", source="reason"
        ) from None
    return text


# --------------------------------------------------------------------------- saving


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What :func:`save_findings` did: stored, already stored, or of a rejected pattern."""

    received: int
    created: int
    duplicates: int
    suppressed: int
    ids: tuple[int, ...] = ()
    #: Findings about a person who objected (only counted when a key was given).
    excluded: int = 0


def _dedup_key(fingerprint: str, time: str | None) -> str:
    moment = parse_time(time) if time else None
    stamp = moment.astimezone(UTC).isoformat() if moment is not None else ""
    return hashlib.sha256(f"{fingerprint}\x1f{stamp}".encode()).hexdigest()


def save_findings(
    session: Session,
    organisation_id: int,
    findings: Sequence[Mapping[str, Any]],
    hunt_id: int | None = None,
    *,
    actor: str = "system",
    exclusion_key: bytes | None = None,
) -> SaveResult:
    """Store the models' ``findings`` for the organisation as pending: nothing else happens to
    them until a person decides. Every finding is validated first (one bad finding refuses the
    call, so a detector's bug is seen, not half-stored). The same fingerprint at the same time,
    already stored or repeated in ``findings``, is stored once; a finding whose pattern was
    rejected is not stored at all (counted as suppressed). Each stored finding is one
    ``finding.created`` entry in the audit trail: the model's decision, by the model.

    With ``exclusion_key`` (:func:`exclusion_key`), a finding about a person who objected (one
    of its ``identifiers`` excluded) is not stored either (counted as excluded): the pipeline
    leaves such people out before scoring, and the store keeps to it as well.
    """
    bodies = [validate(f) for f in findings]
    excluded = 0
    if exclusion_key is not None:
        digests = [
            {identifier_digest(i, exclusion_key) for i in b.get("identifiers", [])} for b in bodies
        ]
        barred = _barred(session, organisation_id, set().union(*digests))
        kept = [b for b, mine in zip(bodies, digests, strict=True) if not mine & barred]
        excluded = len(bodies) - len(kept)
        bodies = kept
    audit.lock(session)
    rejected = set(
        session.scalars(
            select(RejectedPattern.fingerprint).where(
                RejectedPattern.organisation_id == organisation_id,
                RejectedPattern.fingerprint.in_({b["fingerprint"] for b in bodies}),
            )
        )
    )
    fresh: dict[str, dict[str, Any]] = {}
    suppressed = 0
    for body in bodies:
        if body["fingerprint"] in rejected:
            suppressed += 1
            continue
        fresh.setdefault(_dedup_key(body["fingerprint"], body.get("time")), body)
    stored = set(
        session.scalars(
            select(AnomalyFinding.dedup_key).where(
                AnomalyFinding.organisation_id == organisation_id,
                AnomalyFinding.dedup_key.in_(list(fresh)),
            )
        )
    ) if fresh else set()  # fmt: skip
    rows = [
        AnomalyFinding(
            organisation_id=organisation_id,
            dedup_key=key,
            fingerprint=body["fingerprint"],
            model=body["model"],
            version=body["version"],
            detector=body["detector"],
            score=body["score"],
            threshold=body["threshold"],
            confidence=body["confidence"],
            time=_utc(body.get("time")),
            status="pending",
            hunt_id=hunt_id,
            body=body,
        )
        for key, body in fresh.items()
        if key not in stored
    ]
    session.add_all(rows)
    session.flush()
    audit.record_many(
        [
            audit.Entry(
                "finding.created",
                actor=f"model:{row.model}"[:255],
                organisation_id=organisation_id,
                target_type="finding",
                target_id=row.id,
                details={
                    "model": row.model,
                    "version": row.version,
                    "detector": row.detector,
                    "score": row.score,
                    "threshold": row.threshold,
                    "confidence": row.confidence,
                    "by": actor,
                    **({"hunt_id": hunt_id} if hunt_id is not None else {}),
                },
            )
            for row in rows
        ],
        session=session,
    )
    return SaveResult(
        received=len(bodies) + excluded,
        created=len(rows),
        duplicates=len(bodies) - suppressed - len(rows),
        suppressed=suppressed,
        ids=tuple(row.id for row in rows),
        excluded=excluded,
    )


def _utc(time: Any) -> datetime | None:
    moment = parse_time(time) if isinstance(time, str) else None
    return moment.astimezone(UTC) if moment is not None else None


# --------------------------------------------------------------------------- reading


def get_finding(
    *, session: Session, organisation_ids: Collection[int], finding_id: int
) -> AnomalyFinding | None:
    """The finding, or None when there is none among the organisations' findings."""
    row = session.get(AnomalyFinding, finding_id)
    if row is None or row.organisation_id not in set(organisation_ids):
        return None
    return row


def list_findings(
    *,
    session: Session,
    organisation_ids: Collection[int],
    status: str | None = None,
    hunt_id: int | None = None,
    detector: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AnomalyFinding]:
    """The organisations' findings (of one hunt, with ``hunt_id``; of one detector, with
    ``detector``): pending first, then newest first."""
    query = _filtered(select(AnomalyFinding), organisation_ids, status, hunt_id, detector)
    pending_first = case((AnomalyFinding.status == "pending", 0), else_=1)
    query = query.order_by(pending_first, AnomalyFinding.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(query))


def count_by_status(
    *,
    session: Session,
    organisation_ids: Collection[int],
    hunt_id: int | None = None,
    detector: str | None = None,
) -> dict[str, int]:
    """How many findings per status (pending, confirmed, rejected; absent ones as 0), of one
    hunt or one detector when given."""
    counts = dict.fromkeys(("pending", "confirmed", "rejected"), 0)
    query = select(AnomalyFinding.status, func.count())
    query = _filtered(query, organisation_ids, None, hunt_id, detector)
    for status, count in session.execute(query.group_by(AnomalyFinding.status)):
        counts[status] = count
    return counts


def count_by_detector(
    *,
    session: Session,
    organisation_ids: Collection[int],
    status: str | None = None,
    hunt_id: int | None = None,
) -> dict[str, int]:
    """How many findings each detector made (of one status, of one hunt), the most first: at
    thousands of findings awaiting a decision, an analyst takes them one kind at a time."""
    query = select(AnomalyFinding.detector, func.count())
    query = _filtered(query, organisation_ids, status, hunt_id, None)
    rows = session.execute(query.group_by(AnomalyFinding.detector))
    return dict(sorted(rows, key=lambda row: (-row[1], row[0])))


def _filtered(
    query: Select[Any],
    organisation_ids: Collection[int],
    status: str | None,
    hunt_id: int | None,
    detector: str | None,
) -> Select[Any]:
    """``query`` narrowed to the organisations' findings and to each filter that is given."""
    query = query.where(AnomalyFinding.organisation_id.in_(list(organisation_ids)))
    if status is not None:
        query = query.where(AnomalyFinding.status == status)
    if hunt_id is not None:
        query = query.where(AnomalyFinding.hunt_id == hunt_id)
    if detector is not None:
        query = query.where(AnomalyFinding.detector == detector)
    return query


# --------------------------------------------------------------------------- deciding


def _decide(
    session: Session, organisation_id: int, finding_id: int, actor: int, status: str, reason: str
) -> AnomalyFinding:
    """Mark a pending finding decided; refused when it is not the organisation's (not found)
    or was decided already. The conditional UPDATE is the guard: of two decisions at the same
    instant, only one finds the finding still pending."""
    text = clean_reason(reason)
    audit.lock(session)
    row = get_finding(session=session, organisation_ids=[organisation_id], finding_id=finding_id)
    if row is None:
        raise NotFound("no such finding", source="finding")
    result = session.execute(
        update(AnomalyFinding)
        .where(
            AnomalyFinding.id == finding_id,
            AnomalyFinding.organisation_id == organisation_id,
            AnomalyFinding.status == "pending",
        )
        .values(status=status, decided_by=actor, decided_at=utcnow(), reason=text)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise AlreadyDecided("this finding was already decided", source="finding")
    session.refresh(row)
    return row


def alert_body(row: AnomalyFinding) -> dict[str, Any]:
    """The alert a confirmed finding becomes, in the documented alert shape (docs/alerts.md):
    its rule names the model and is tagged :data:`AI_TAG`; its event holds the entity and an
    ``ai`` part saying which model proposed it, with what score, and who confirmed it, when
    and why."""
    body = row.body
    entity = body.get("entity") or {}
    event: dict[str, Any] = {str(k): v for k, v in entity.items()}
    # The entity's addresses under the names the alert store reads observables from, so the
    # alert pivots and groups by them like a rule's alert.
    for name, alias in _ENTITY_ALIASES.items():
        if isinstance(entity.get(name), str) and alias not in event:
            event[alias] = entity[name]
    event["ai"] = {
        "generated": True,
        "label": body.get("label"),
        "finding_id": row.id,
        "model": row.model,
        "version": row.version,
        "detector": row.detector,
        "score": row.score,
        "threshold": row.threshold,
        "confidence": row.confidence,
        "contributions": body.get("contributions"),
        "examples": body.get("examples"),
        "decision": {
            "status": "confirmed",
            "by": row.decided_by,
            "at": row.decided_at.isoformat() if row.decided_at else None,
            "reason": row.reason,
        },
    }
    summary = str(body.get("summary") or row.detector)
    alert = {
        "rule": {
            "id": f"ai:{row.model}"[:200],
            "title": f"AI model {row.model} {row.version}: {summary}"[:500],
            "level": ALERT_LEVEL,
            "tags": [AI_TAG, f"ai.detector.{row.detector}"[:200]],
            "status": "ai-model",
            "path": f"model:{row.model}@{row.version}"[:4096],
        },
        "time": body.get("time"),
        "host": (entity.get("host") or None) if isinstance(entity.get("host"), str) else None,
        "source": {"path": str(body.get("source") or "")[:4096], "record": 0, "format": "anomaly"},
        "event": event,
    }
    return AlertIn.model_validate(alert).body()


def confirm(
    session: Session, finding_id: int, actor: int, reason: str, *, organisation_id: int
) -> AnomalyFinding:
    """An analyst (user id ``actor``) confirms the finding with ``reason``: it becomes an alert
    of the same organisation (``finding.alert_id``), recorded as ``finding.confirmed``."""
    row = _decide(session, organisation_id, finding_id, actor, "confirmed", reason)
    body = alert_body(row)
    alert_store.store(
        session=session,
        organisation_id=organisation_id,
        bodies=[body],
        actor=str(actor),
        hunt_id=row.hunt_id,
    )
    alert_id = session.scalar(
        select(StoredAlert.id).where(
            StoredAlert.organisation_id == organisation_id,
            StoredAlert.fingerprint == alert_store.fingerprint(body),
        )
    )
    row.alert_id = alert_id
    session.flush()
    audit.record(
        "finding.confirmed",
        session=session,
        actor=str(actor),
        organisation_id=organisation_id,
        target_type="finding",
        target_id=row.id,
        details={"alert_id": alert_id, "model": row.model, "version": row.version},
    )
    return row


def reject(
    session: Session, finding_id: int, actor: int, reason: str, *, organisation_id: int
) -> AnomalyFinding:
    """An analyst rejects the finding with ``reason``: its pattern is recorded
    (:func:`rejected_patterns`), so the detectors stop reporting it and learn it as normal;
    recorded as ``finding.rejected``."""
    row = _decide(session, organisation_id, finding_id, actor, "rejected", reason)
    known = session.scalar(
        select(RejectedPattern.id).where(
            RejectedPattern.organisation_id == organisation_id,
            RejectedPattern.fingerprint == row.fingerprint,
        )
    )
    if known is None:
        session.add(
            RejectedPattern(
                organisation_id=organisation_id,
                fingerprint=row.fingerprint,
                model=row.model,
                pattern=str(row.body.get("pattern") or ""),
                finding_id=row.id,
                rejected_by=actor,
                reason=row.reason or "",
            )
        )
        session.flush()
    audit.record(
        "finding.rejected",
        session=session,
        actor=str(actor),
        organisation_id=organisation_id,
        target_type="finding",
        target_id=row.id,
        details={"model": row.model, "version": row.version, "new_pattern": known is None},
    )
    return row


@dataclass(frozen=True, slots=True)
class Rejected:
    """A rejected pattern, as the pipeline needs it: suppress ``fingerprint``, and give
    ``finding`` (the rejected finding's body) to the model's ``absorb``."""

    fingerprint: str
    model: str
    pattern: str
    finding: dict[str, Any]


def rejected_patterns(session: Session, organisation_id: int) -> list[Rejected]:
    """The organisation's rejected patterns, oldest first."""
    rows = session.execute(
        select(RejectedPattern, AnomalyFinding.body)
        .join(AnomalyFinding, AnomalyFinding.id == RejectedPattern.finding_id)
        .where(RejectedPattern.organisation_id == organisation_id)
        .order_by(RejectedPattern.id)
    )
    return [Rejected(p.fingerprint, p.model, p.pattern, dict(body)) for p, body in rows]


# --------------------------------------------------------------------------- objections


#: Identifiers of one objection: one person's (a name, phones, e-mail addresses, accounts); a
#: three-word name keeps 24 spellings, so this bounds one objection at a few thousand digests.
MAX_OBJECTION_IDENTIFIERS = 100


def exclusion_key(settings: Settings) -> bytes:
    """The key of the identifiers' keyed hashes: the privacy service's pseudonym key
    (``QORGAN_PRIVACY_HASH_KEY``, kept in ``var_dir`` in development, as
    :func:`qorgan.privacy.protection.protection` does), so one secret protects every
    person-level hash Qorgan keeps."""
    value = settings.privacy_hash_key.get_secret_value()
    if not value:
        if settings.environment is Environment.production:
            raise FindingError("production needs QORGAN_PRIVACY_HASH_KEY", source="settings")
        value = var_secret(settings, "privacy_hash_key", lambda: secrets.token_urlsafe(48))
    return value.encode("utf-8")


def identifier_digest(identifier: str, key: bytes) -> str:
    """The keyed hash (HMAC-SHA256, hex) an exclusion stores for ``identifier``. For an IIN
    it is the privacy service's pseudonym of that IIN (same key, same hash), so the citizen
    portal, which knows a citizen only by that pseudonym, can record their objection."""
    return _digest(normalise_identifier(identifier), key)


def _digest(normalised: str, key: bytes) -> str:
    # surrogatepass: an event's text may hold a lone surrogate (JSON's "\ud800"); its digest
    # matches no objection (exclude refuses such text), and must not fail the models' batch.
    return hmac.new(key, normalised.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def exclude(
    session: Session,
    *,
    organisation_id: int | None,
    identifiers: Iterable[str],
    key: bytes,
    actor: int,
    request_ref: str,
    origin: str = "request",
    digests: Iterable[str] = (),
) -> int:
    """Record a person's objection: each of their ``identifiers`` (IIN, e-mail, phone, user
    name, full name) is kept out of the organisation's models (``organisation_id`` None: out of
    every organisation's) from now on, in each of its spellings (:func:`identifier_spellings`:
    a name's words in any order or with an initial, a phone with ``+7``, ``8`` or neither);
    ``digests`` are identifiers already keyed-hashed (the portal's pseudonym of the citizen's
    IIN). Recording again an objection kept before its spellings were adds them. Returns how
    many identifiers were newly excluded; one ``finding.excluded`` entry records the objection
    (counts, never the identifiers)."""
    if origin not in ORIGINS:
        raise FindingError(f"an objection comes from one of {', '.join(ORIGINS)}")
    ref = clean_reason(request_ref) if request_ref else ""
    if not ref:
        raise FindingError("an objection needs the request's reference", source="request")
    if len(ref) > 200:
        raise FindingError("a request reference has at most 200 characters", source="request")
    #: Per identifier given, its digests: one, or one per spelling (identifier_spellings).
    given: list[list[str]] = []
    for digest in digests:
        if not (isinstance(digest, str) and _HEX64.fullmatch(digest)):
            raise FindingError("a hashed identifier is 64 hexadecimal digits", source="request")
        given.append([digest])
    for identifier in identifiers:
        if not isinstance(identifier, str) or not normalise_identifier(identifier):
            continue
        try:
            identifier.encode("utf-8")
        except UnicodeEncodeError:
            raise FindingError("an identifier is not storable text", source="request") from None
        given.append([_digest(s, key) for s in identifier_spellings(identifier)])
    given = list({frozenset(group): group for group in given}.values())
    if not given:
        raise FindingError("an objection names at least one identifier", source="request")
    if len(given) > MAX_OBJECTION_IDENTIFIERS:
        raise FindingError(
            f"an objection names at most {MAX_OBJECTION_IDENTIFIERS} identifiers", source="request"
        )
    hashed = list(dict.fromkeys(d for group in given for d in group))
    audit.lock(session)
    scope = (
        AnomalyExclusion.organisation_id.is_(None)
        if organisation_id is None
        else AnomalyExclusion.organisation_id == organisation_id
    )
    known = set(
        session.scalars(
            select(AnomalyExclusion.identifier_hash).where(
                scope, AnomalyExclusion.identifier_hash.in_(hashed)
            )
        )
    )
    added = [d for d in hashed if d not in known]
    newly = sum(1 for group in given if not known.issuperset(group))
    #: One moment for the objection's rows: its list shows them as one (list_objections).
    now = utcnow()
    session.add_all(
        AnomalyExclusion(
            organisation_id=organisation_id,
            identifier_hash=digest,
            origin=origin,
            recorded_by=actor,
            recorded_at=now,
            request_ref=ref,
        )
        for digest in added
    )
    session.flush()
    audit.record(
        "finding.excluded",
        session=session,
        actor=str(actor),
        organisation_id=organisation_id,
        target_type="exclusion",
        target_id=None,
        details={"origin": origin, "identifiers": len(given), "added": newly},
    )
    return newly


def _exclusions_of(organisation_id: int) -> Any:
    """The exclusions that hold for the organisation: its own and the citizen portal's.

    Written so that no index on ``organisation_id`` can serve it: with ``x = org OR x IS NULL``
    SQLite read every row of both through the (organisation, hash) index and sorted them (0.5 s
    at 200,000 exclusions) where the newest, or those after a number, were asked for; this way
    the primary key leads, and the identifier hash's index where hashes are asked for."""
    x = AnomalyExclusion
    return func.coalesce(x.organisation_id, organisation_id) == organisation_id


def _barred(session: Session, organisation_id: int, digests: Collection[str]) -> set[str]:
    """Which of ``digests`` are excluded for the organisation: only those are looked up,
    however many people objected (in chunks, below every database's limit of parameters)."""
    x = AnomalyExclusion
    asked = sorted(digests)
    barred: set[str] = set()
    for start in range(0, len(asked), 500):
        barred.update(
            session.scalars(
                select(x.identifier_hash).where(
                    _exclusions_of(organisation_id),
                    x.identifier_hash.in_(asked[start : start + 500]),
                )
            )
        )
    return barred


def excluded_identifiers(session: Session, organisation_id: int) -> frozenset[str]:
    """The keyed hashes of every identifier excluded from the organisation's models (its own
    objections and those made through the citizen portal); match with :func:`is_excluded`."""
    return new_exclusions(session, organisation_id)[0]


def new_exclusions(
    session: Session, organisation_id: int, after: int = 0
) -> tuple[frozenset[str], int]:
    """The keyed hashes excluded for the organisation since the exclusion numbered ``after``
    (0: all of them), and the number to pass next time. Exclusions are only ever added, so a
    reader that keeps the number reads each once (live monitoring every few seconds). That
    holds because :func:`exclude`, their only writer, numbers them under the audit trail's lock:
    a lower number is never committed after a higher one has been read."""
    x = AnomalyExclusion
    rows = session.execute(
        select(x.id, x.identifier_hash).where(_exclusions_of(organisation_id), x.id > after)
    ).all()
    return frozenset(h for _, h in rows), max((i for i, _ in rows), default=after)


def is_excluded(identifiers: Iterable[str], excluded: Collection[str], key: bytes) -> bool:
    """Whether any of ``identifiers`` (a finding's, an event's user) was excluded."""
    if not excluded:
        return False
    return any(identifier_digest(i, key) in excluded for i in identifiers if isinstance(i, str))


@dataclass(frozen=True, slots=True)
class Objection:
    """One recorded objection as its list shows it: the rows :func:`exclude` wrote together
    (one per spelling of each identifier), which share the moment, the recorder and the
    reference."""

    recorded_at: datetime
    recorded_by: int | None
    origin: str
    request_ref: str


def list_objections(session: Session, organisation_id: int, limit: int) -> list[Objection]:
    """The objections recorded for the organisation and through the portal, newest first: the
    newest exclusions are read until ``limit`` objections are found (an objection is its rows
    of one moment, recorder and reference), not the whole table."""
    x = AnomalyExclusion
    rows = session.execute(
        select(x.recorded_at, x.recorded_by, x.origin, x.request_ref)
        .where(_exclusions_of(organisation_id))
        .order_by(x.id.desc())
        .execution_options(yield_per=500)
    )
    found: dict[tuple[Any, ...], None] = {}
    for row in rows:
        found[tuple(row)] = None
        if len(found) > limit:
            del found[tuple(row)]
            break
    rows.close()
    return [Objection(*key) for key in found]


# --------------------------------------------------------------------------- the register


def _model(session: Session, organisation_id: int, name: str, version: str) -> ModelRecord:
    row = session.scalar(
        select(ModelRecord).where(
            ModelRecord.organisation_id == organisation_id,
            ModelRecord.name == name,
            ModelRecord.version == version,
        )
    )
    if row is None:
        raise NotFound(f"no model {name} {version} in the register", source="model")
    return row


def _metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    if metrics is None:
        return {}
    try:
        return _json_object(dict(metrics), "metrics", 16 * 1024)
    except ValueError as exc:
        raise FindingError(str(exc), source="model") from None


def register_model(
    session: Session,
    *,
    organisation_id: int,
    name: str,
    version: str,
    purpose: str,
    inputs: Sequence[str],
    training_from: datetime | None = None,
    training_to: datetime | None = None,
    metrics: Mapping[str, Any] | None = None,
    actor: str,
) -> ModelRecord:
    """Enter a model in the organisation's register (unapproved); recorded as
    ``model.registered``. A name and version already registered is refused."""
    _text(name, "the model's name", 200)
    _text(version, "the model's version", 100)
    _text(purpose, "the model's purpose", 2000)
    if not all(isinstance(i, str) and i.strip() for i in inputs) or not inputs:
        raise FindingError("a model names its inputs", source="model")
    audit.lock(session)
    if session.scalar(
        select(ModelRecord.id).where(
            ModelRecord.organisation_id == organisation_id,
            ModelRecord.name == name,
            ModelRecord.version == version,
        )
    ):
        raise FindingError(f"model {name} {version} is already registered", source="model")
    row = ModelRecord(
        organisation_id=organisation_id,
        name=name,
        version=version,
        purpose=purpose.strip(),
        inputs=[i.strip() for i in inputs],
        training_from=training_from,
        training_to=training_to,
        metrics=_metrics(metrics),
    )
    session.add(row)
    session.flush()
    audit.record(
        "model.registered",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="model",
        target_id=row.id,
        details={"name": name, "version": version},
    )
    return row


def approve_model(
    session: Session, *, organisation_id: int, name: str, version: str, approver: int, actor: str
) -> ModelRecord:
    """A person (user id ``approver``) approves the model for use; recorded as
    ``model.approved``."""
    audit.lock(session)
    row = _model(session, organisation_id, name, version)
    row.approved_by = approver
    row.approved_at = utcnow()
    session.flush()
    audit.record(
        "model.approved",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="model",
        target_id=row.id,
        details={"name": name, "version": version, "approver": approver},
    )
    return row


def record_retraining(
    session: Session,
    *,
    organisation_id: int,
    name: str,
    version: str,
    training_from: datetime | None,
    training_to: datetime | None,
    metrics: Mapping[str, Any] | None = None,
    actor: str,
) -> ModelRecord:
    """Record that the model was retrained, on which period, with which figures: retraining
    is explicit (``model.retrained``), never a silent drift."""
    audit.lock(session)
    row = _model(session, organisation_id, name, version)
    row.training_from = training_from
    row.training_to = training_to
    if metrics is not None:
        row.metrics = _metrics(metrics)
    row.retrained_at = utcnow()
    session.flush()
    audit.record(
        "model.retrained",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="model",
        target_id=row.id,
        details={"name": name, "version": version},
    )
    return row


def list_models(session: Session, organisation_id: int) -> list[ModelRecord]:
    """The organisation's register, by name then version."""
    return list(
        session.scalars(
            select(ModelRecord)
            .where(ModelRecord.organisation_id == organisation_id)
            .order_by(ModelRecord.name, ModelRecord.version)
        )
    )
