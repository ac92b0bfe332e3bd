"""Access decisions: may system S read categories C of subject X for purpose P under basis B,
on behalf of official U? Every decision, and every access a system reports, goes into the
subject's access log with those facts; the caller answers only after the transaction that
holds it has committed, so an acknowledged decision is never lost.

The rules, in order (the first that fails gives the reason):

1. the purpose, the basis and every category must be registered for the system;
2. under ``consent``, an active consent of the subject to that system must cover the purpose
   and every category, and its term must not have ended; the reason names what is missing
   (none, withdrawn, expired);
3. under another basis, access is allowed and recorded with the basis claimed (the law, not
   the subject, permits it; the log lets the subject and the DPO see it was claimed).

An access hidden by law (``hidden_until``: only under ``law_enforcement``) is recorded with
its grounds and who may see it meanwhile; the subject's log shows it from that date on.
A request may carry the system's own ``request_id``: asked again (a retry after a lost answer),
the recorded decision is returned, not made twice.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Row, Select, any_, bindparam, select, text
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qorgan.core.errors import QorganError
from qorgan.core.identifiers import IdentifierError, parse_iin
from qorgan.privacy.models import (
    AccessRecord,
    Consent,
    ConsentStatus,
    DataCategory,
    InformationSystem,
    LegalBasis,
    Outcome,
    Subject,
)
from qorgan.privacy.protection import Protection

#: The longest an access may stay hidden from its subject in one go.
MAX_HIDDEN = timedelta(days=5 * 366)

#: Each reason's plain-language explanation (pages translate them by code).
REASONS = {
    "consent": "the subject's consent covers this purpose and these data",
    "legal_basis": "the law permits this access without consent on the basis claimed",
    "no_consent": "the subject has not consented to this system using these data for this purpose",
    "consent_withdrawn": "the subject withdrew their consent",
    "consent_expired": "the subject's consent has ended",
    "purpose_not_registered": "the purpose is not registered for this system",
    "basis_not_registered": "the legal basis is not registered for this system",
    "category_not_registered": "the system is not registered to hold these categories of data",
    "reported": "the system reported this access",
    "staff_read": "a member of the organisation's staff read your record in this service",
}


class DecisionError(QorganError):
    """The request cannot be decided as sent; the message is fit for the caller."""


@dataclass(frozen=True)
class AccessRequest:
    subject_iin: str
    categories: Sequence[str]
    purpose: str
    legal_basis: str
    official: str
    request_id: str | None = None
    hidden_until: date | None = None
    hidden_because: str | None = None
    hidden_visible_to: str | None = None


@dataclass(frozen=True)
class Decision:
    record_id: int
    outcome: Outcome
    reason: str
    at: datetime
    consent_id: int | None

    @property
    def explanation(self) -> str:
        return REASONS[self.reason]


def subject_for(*, session: Session, protection: Protection, iin: str) -> Subject:
    """The subject with this IIN (checked), made on first sight; safe against a concurrent
    first sight of the same person."""
    try:
        parsed = parse_iin(iin)
    except IdentifierError as exc:
        raise DecisionError(str(exc)) from exc
    pseudonym = protection.pseudonym(parsed.value)
    found = session.scalar(select(Subject).where(Subject.iin_hash == pseudonym))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = Subject(iin_hash=pseudonym)
            session.add(found)
    except IntegrityError:
        found = session.scalar(select(Subject).where(Subject.iin_hash == pseudonym))
        assert found is not None
    return found


def _clean(value: str, what: str, size: int) -> str:
    value = " ".join(value.split())
    if not value or len(value) > size:
        raise DecisionError(f"{what} has 1 to {size} characters")
    return value


def _request(request: AccessRequest, today: date) -> AccessRequest:
    """The request with its values checked and normalised."""
    try:
        basis = LegalBasis(request.legal_basis)
        categories = sorted({DataCategory(c).value for c in request.categories})
    except ValueError as exc:
        raise DecisionError(f"unknown legal basis or data category: {exc}") from None
    if not categories:
        raise DecisionError("name at least one data category")
    hidden_until = request.hidden_until
    if hidden_until is not None:
        if basis is not LegalBasis.law_enforcement:
            raise DecisionError("only an access under law_enforcement may be hidden")
        if not today < hidden_until <= today + MAX_HIDDEN:
            raise DecisionError("hidden_until must be a date within five years from today")
        if not (request.hidden_because and request.hidden_visible_to):
            raise DecisionError("a hidden access needs its grounds and who may see it")
    return AccessRequest(
        subject_iin=request.subject_iin,
        categories=categories,
        purpose=_clean(request.purpose, "a purpose", 200),
        legal_basis=basis.value,
        official=_clean(request.official, "the official", 200),
        request_id=_clean(request.request_id, "a request id", 100) if request.request_id else None,
        hidden_until=hidden_until,
        hidden_because=_clean(request.hidden_because, "the grounds", 500) if hidden_until else None,
        hidden_visible_to=_clean(request.hidden_visible_to, "who may see it", 300)
        if hidden_until
        else None,
    )


def _registered(system: InformationSystem, request: AccessRequest) -> tuple[Outcome, str] | None:
    """Rule 1 and rule 3: what the registry alone decides, or None when consent must."""
    if request.purpose not in system.purposes:
        return Outcome.deny, "purpose_not_registered"
    if request.legal_basis not in system.legal_bases:
        return Outcome.deny, "basis_not_registered"
    if not set(request.categories) <= set(system.categories):
        return Outcome.deny, "category_not_registered"
    if request.legal_basis != LegalBasis.consent:
        return Outcome.allow, "legal_basis"
    return None


def _consent_reason(
    consents: Sequence[Row[Any]], request: AccessRequest, today: date
) -> tuple[str, int | None]:
    """Rule 2 over the subject's consents to the system, newest first (``id``, ``purposes``,
    ``categories``, ``status``, ``term_until``)."""
    covering = [
        c
        for c in consents
        if request.purpose in c.purposes and set(request.categories) <= set(c.categories)
    ]
    for consent in covering:
        ended = consent.term_until is not None and consent.term_until < today
        if consent.status is ConsentStatus.active and not ended:
            return "consent", consent.id
    if not covering:
        return "no_consent", None
    newest = covering[0]
    if newest.status is ConsentStatus.withdrawn:
        return "consent_withdrawn", newest.id
    return "consent_expired", newest.id


@dataclass(frozen=True)
class Ask:
    """One request of a batch: ``system`` asks ``request`` (or, ``reported``, reports it)."""

    system: InformationSystem
    request: AccessRequest
    reported: bool = False


_LOG = AccessRecord.__table__


def _among(column: Any, name: str, postgres: bool) -> Any:
    """``column`` is one of the list bound as ``name``: ``= ANY(array)`` on PostgreSQL (one
    statement text whatever the list's length, so the server prepares it once), an expanding
    ``IN`` elsewhere."""
    if postgres:
        return column == any_(bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def _earlier_statement(postgres: bool) -> Select[Any]:
    return select(
        _LOG.c.system_id,
        _LOG.c.request_id,
        _LOG.c.id,
        _LOG.c.outcome,
        _LOG.c.reason,
        _LOG.c.at,
        _LOG.c.consent_id,
    ).where(
        _among(_LOG.c.system_id, "systems", postgres),
        _among(_LOG.c.request_id, "requests", postgres),
    )


def _subjects_statement(postgres: bool) -> Select[Any]:
    """The subjects of a batch and their consents to the systems that must ask for consent
    (one row per consent, newest first, or one row of nulls); a subject without a row is
    new."""
    return (
        select(
            Subject.id.label("subject_id"),
            Subject.iin_hash,
            Consent.system_id,
            Consent.id,
            Consent.purposes,
            Consent.categories,
            Consent.status,
            Consent.term_until,
        )
        .select_from(Subject)
        .outerjoin(
            Consent,
            (Consent.subject_id == Subject.id) & _among(Consent.system_id, "systems", postgres),
        )
        .where(_among(Subject.iin_hash, "pseudonyms", postgres))
        .order_by(Consent.given_at.desc(), Consent.id.desc())
    )


#: Built once (building and keying a statement costs more than running it), by dialect.
_EARLIER = {postgres: _earlier_statement(postgres) for postgres in (False, True)}
_SUBJECTS = {postgres: _subjects_statement(postgres) for postgres in (False, True)}
_KEYED_INSERTS = {
    "sqlite": sqlite.insert(_LOG)
    .on_conflict_do_nothing(index_elements=["system_id", "request_id"])
    .returning(_LOG.c.system_id, _LOG.c.request_id, _LOG.c.id),
}
_PLAIN_INSERT = sa_insert(_LOG).returning(_LOG.c.id, sort_by_parameter_order=True)


def _postgres(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def _earlier(
    session: Session, keys: Collection[tuple[int, str]]
) -> dict[tuple[int, str], Decision]:
    """The recorded decisions of these (system id, request id) pairs."""
    if not keys:
        return {}
    parameters = {"systems": sorted({k[0] for k in keys}), "requests": sorted({k[1] for k in keys})}
    return {
        (row.system_id, row.request_id): Decision(
            row.id, Outcome(row.outcome), row.reason, row.at, row.consent_id
        )
        for row in session.connection().execute(_EARLIER[_postgres(session)], parameters).all()
        if (row.system_id, row.request_id) in keys
    }


def _subjects(
    session: Session, pseudonyms: Collection[str], systems: Collection[int]
) -> tuple[dict[str, int], dict[tuple[int, int], list[Row[Any]]]]:
    """In one round trip: each known subject's id by pseudonym, and the consents of those
    subjects to ``systems``, newest first, by (subject id, system id)."""
    ids: dict[str, int] = {}
    consents: dict[tuple[int, int], list[Row[Any]]] = {}
    parameters = {"pseudonyms": sorted(pseudonyms), "systems": sorted(systems) or [-1]}
    statement = _SUBJECTS[_postgres(session)]
    for row in session.connection().execute(statement, parameters).all():
        ids[row.iin_hash] = row.subject_id
        if row.id is not None:
            consents.setdefault((row.subject_id, row.system_id), []).append(row)
    return ids, consents


#: The log's columns an entry gives, and their types as PostgreSQL arrays.
_COLUMNS = {
    "subject_id": "integer", "system_id": "integer", "at": "timestamptz",
    "outcome": "varchar", "reason": "varchar", "official": "varchar", "purpose": "varchar",
    "legal_basis": "varchar", "categories": "text", "consent_id": "integer",
    "hidden_until": "date", "hidden_because": "varchar", "hidden_visible_to": "varchar",
    "request_id": "varchar",
}  # fmt: skip
#: A batch's entries in one statement of one text whatever their number (so the server
#: prepares it once): the columns as arrays, unnested in the batch's order, which the new
#: ids follow (the sequence is drawn in that order; SQLAlchemy's insertmanyvalues relies on
#: the same for its sentinels).
_UNNEST_INSERT = text(
    f"INSERT INTO {_LOG.name} ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(f'u.{c}::json' if c == 'categories' else f'u.{c}' for c in _COLUMNS)} "
    f"FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _COLUMNS.items())}) "
    f"WITH ORDINALITY AS u({', '.join(_COLUMNS)}, n) ORDER BY u.n "
    "ON CONFLICT (system_id, request_id) DO NOTHING RETURNING id, system_id, request_id"
)


def _unnest_insert(
    session: Session, entries: list[dict[str, Any]]
) -> tuple[dict[tuple[int, str], int], list[int]]:
    arrays: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
    for entry in entries:
        for column, values in arrays.items():
            values.append(entry[column])
    arrays["categories"] = [orjson.dumps(c).decode() for c in arrays["categories"]]
    arrays["outcome"] = [str(o) for o in arrays["outcome"]]  # StrEnums: their values
    arrays["legal_basis"] = [str(b) for b in arrays["legal_basis"]]
    added: dict[tuple[int, str], int] = {}
    plain: list[int] = []
    for row in session.connection().execute(_UNNEST_INSERT, arrays).all():
        if row.request_id is None:
            plain.append(row.id)
        else:
            added[row.system_id, row.request_id] = row.id
    return added, sorted(plain)


def _insert(
    session: Session, keyed: list[dict[str, Any]], plain: list[dict[str, Any]]
) -> tuple[dict[tuple[int, str], int], list[int]]:
    """Add the entries to the log; an entry whose system's request id is there already (a
    retry that raced this one) is left out of the answer, which gives the new ids by
    (system id, request id) and, for the entries without a request id, in their order. The
    database settles the race, no savepoint."""
    if _postgres(session):
        return _unnest_insert(session, [*keyed, *plain])
    connection = session.connection()
    added: dict[tuple[int, str], int] = {}
    if keyed:
        statement = _KEYED_INSERTS.get(connection.dialect.name)
        if statement is not None:
            rows = connection.execute(statement, keyed)
            added = {(r.system_id, r.request_id): r.id for r in rows}
        else:  # another database: the unique constraint, behind a savepoint per entry
            for values in keyed:
                try:
                    with session.begin_nested():
                        found = connection.execute(_PLAIN_INSERT, values).scalar_one()
                    added[values["system_id"], values["request_id"]] = found
                except IntegrityError:
                    pass
    ids = list(connection.execute(_PLAIN_INSERT, plain).scalars()) if plain else []
    return added, ids


@dataclass
class _Item:
    """An ask on its way through :func:`record_many`."""

    ask: Ask
    request: AccessRequest
    pseudonym: str = ""
    decided: tuple[Outcome, str] | None = None
    values: dict[str, Any] | None = None
    result: Decision | DecisionError | None = None


def _checked(ask: Ask, today: date) -> _Item | DecisionError:
    try:
        request = _request(ask.request, today)
    except DecisionError as exc:
        return exc
    item = _Item(ask, request)
    try:
        item.pseudonym = parse_iin(request.subject_iin).value
    except IdentifierError as exc:
        item.result = DecisionError(str(exc))
    return item


def record_many(
    *,
    session: Session,
    protection: Protection,
    asks: Sequence[Ask],
    now: datetime | None = None,
) -> list[Decision | DecisionError]:
    """Decide each ask (or record the access it reports) and add it to its subject's access
    log, in the session's transaction: a batch of concurrent requests costs a handful of
    round trips, not a few per request. Answers in the order of ``asks``: the decision, or
    the error that request alone gets. A request id asked again (a retry, or twice in the
    batch) is answered with the recorded decision, whatever the request now says."""
    now = now or datetime.now(UTC)
    today = now.date()
    checked = [_checked(ask, today) for ask in asks]
    items = [c for c in checked if isinstance(c, _Item)]
    keys = {(i.ask.system.id, i.request.request_id) for i in items if i.request.request_id}
    earlier = _earlier(session, keys)
    live: list[_Item] = []
    for item in items:
        key = (item.ask.system.id, item.request.request_id or "")
        if key in earlier:
            item.result = earlier[key]
        elif item.result is None:
            item.pseudonym = protection.pseudonym(item.pseudonym)
            item.decided = (
                (Outcome.reported, "reported")
                if item.ask.reported
                else _registered(item.ask.system, item.request)
            )
            live.append(item)
    asking = {i.ask.system.id for i in live if i.decided is None}
    subject_ids, consents = _subjects(session, {i.pseudonym for i in live}, asking)
    for item in live:
        if item.pseudonym not in subject_ids:
            subject_ids[item.pseudonym] = subject_for(
                session=session, protection=protection, iin=item.request.subject_iin
            ).id
    firsts: dict[tuple[int, str], _Item] = {}
    for item in live:
        system, request = item.ask.system, item.request
        if request.request_id:
            first = firsts.setdefault((system.id, request.request_id), item)
            if first is not item:  # asked twice in this batch: answered as the first is
                continue
        subject_id = subject_ids[item.pseudonym]
        consent_id = None
        if item.decided is not None:
            outcome, reason = item.decided
        else:
            found = consents.get((subject_id, system.id), [])
            reason, consent_id = _consent_reason(found, request, today)
            outcome = Outcome.allow if reason == "consent" else Outcome.deny
        item.decided = (outcome, reason)
        item.values = {
            "subject_id": subject_id,
            "system_id": system.id,
            "at": now,
            "outcome": outcome,
            "reason": reason,
            "official": request.official,
            "purpose": request.purpose,
            "legal_basis": LegalBasis(request.legal_basis),
            "categories": list(request.categories),
            "consent_id": consent_id,
            "hidden_until": request.hidden_until,
            "hidden_because": request.hidden_because,
            "hidden_visible_to": request.hidden_visible_to,
            "request_id": request.request_id,
        }
    writing = [i for i in live if i.values is not None]
    keyed = [i.values for i in writing if i.request.request_id and i.values]
    plain = [i.values for i in writing if not i.request.request_id and i.values]
    added, ids = _insert(session, keyed, plain)
    raced = {
        k
        for k in ((i.ask.system.id, i.request.request_id) for i in writing)
        if k[1] and k not in added
    }
    earlier = _earlier(session, raced)  # the same request ids, recorded by concurrent retries
    plain_ids = iter(ids)
    for item in writing:
        assert item.values is not None and item.decided is not None
        key = (item.ask.system.id, item.request.request_id or "")
        if key in raced:
            item.result = earlier[key]
            continue
        record_id = added[key] if item.request.request_id else next(plain_ids)
        item.result = Decision(record_id, *item.decided, now, item.values["consent_id"])
    for item in live:
        if item.result is None:  # the second of a request id asked twice in the batch
            first = firsts[item.ask.system.id, item.request.request_id or ""]
            item.result = first.result
    answers: list[Decision | DecisionError] = []
    for found in checked:
        result = found if isinstance(found, DecisionError) else found.result
        assert result is not None
        answers.append(result)
    return answers


def record(
    *,
    session: Session,
    protection: Protection,
    system: InformationSystem,
    request: AccessRequest,
    reported: bool = False,
    now: datetime | None = None,
) -> Decision:
    """Decide ``request`` for ``system`` (or, ``reported``, record an access it made) and add
    it to the subject's access log; the caller commits before answering."""
    (found,) = record_many(
        session=session, protection=protection, asks=[Ask(system, request, reported)], now=now
    )
    if isinstance(found, DecisionError):
        raise found
    return found


def subject_log(*, session: Session, subject_id: int, today: date) -> list[AccessRecord]:
    """The subject's access log as they may read it, newest first: entries hidden by law
    appear once their date has come."""
    return list(
        session.scalars(
            select(AccessRecord)
            .where(
                AccessRecord.subject_id == subject_id,
                (AccessRecord.hidden_until.is_(None)) | (AccessRecord.hidden_until <= today),
            )
            .order_by(AccessRecord.at.desc(), AccessRecord.id.desc())
        )
    )
