"""The legal-referral package of an incident, assembled from the store: the summary, the
candidate Criminal Code articles, the timeline, the observables, the evidence files with their
hashes and the chain of custody, signed with the instance's Ed25519 key
(:mod:`qorgan.incidents.referral` builds and verifies the package itself).

Display texts (class labels, article names, what each timeline event says) come from the
caller in the package's language; this module reads the database and the evidence store only.
Exporting is an event of the incident and an entry in the audit trail, with the package's
manifest fingerprint, so the package handed over can be matched to the trail.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from qorgan.core import signing
from qorgan.core.db import utcnow
from qorgan.core.models import Organisation, User
from qorgan.incidents import evidence, referral, service, timeline
from qorgan.incidents.lifecycle import RANK_SEVERITY
from qorgan.incidents.models import Asset, Incident, IncidentAsset

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy.orm import Session

#: The signing key's file under the data directory.
KEY_FILE = "referral-signing-key.pem"
LANGUAGES = ("kk", "ru", "en")


@dataclass(frozen=True, slots=True)
class Labels:
    """The display texts of the package, in its language."""

    kz_cert_class: str | None
    rsit: str | None
    severity: str
    status: str
    articles: Mapping[str, str]
    describe: Callable[[timeline.Entry], str]


@dataclass(frozen=True, slots=True)
class Exported:
    path: Path
    manifest: referral.Manifest
    file_name: str


def signing_key(var_dir: Path) -> Ed25519PrivateKey:
    """The instance's referral signing key (made on first use, mode 0600).

    A key that cannot be read or written is a :class:`~referral.ReferralError`, like every other
    reason an export fails, so the console answers it as one."""
    try:
        return signing.load_or_create_signing_key(var_dir / KEY_FILE)
    except signing.SigningError as exc:
        raise referral.ReferralError(exc.message, source=exc.source) from exc


def export(
    *,
    session: Session,
    incident: Incident,
    reader_organisation_id: int,
    actor_id: int,
    language: str,
    labels: Labels,
    var_dir: Path,
) -> Exported:
    """Build the package into a temporary file (the caller sends and removes it)."""
    if language not in LANGUAGES:
        raise referral.ReferralError(f"no package language {language!r}")
    organisation = session.get(Organisation, incident.organisation_id)
    assets = session.scalars(
        select(Asset.name)
        .join(IncidentAsset, IncidentAsset.asset_id == Asset.id)
        .where(IncidentAsset.incident_id == incident.id)
        .order_by(Asset.name)
    ).all()
    summary = referral.IncidentSummary(
        reference=service.reference(incident.id),
        title=incident.title,
        description=incident.description,
        organisation=organisation.name if organisation else "",
        kz_cert_class=labels.kz_cert_class,
        rsit=labels.rsit,
        severity=labels.severity,
        status=labels.status,
        tlp=f"TLP:{incident.tlp.upper()}",
        pap=f"PAP:{incident.pap.upper()}",
        first_event_at=incident.started_at,
        detected_at=incident.created_at,
        assets=list(assets),
    )
    found = timeline.timeline(session=session, incident_id=incident.id)
    entries = [
        referral.TimelineEntry(time=e.at, kind=e.kind, actor=e.by, text=labels.describe(e))
        for e in found.entries
    ]
    files = evidence.list_evidence(session=session, incident_id=incident.id)
    root = evidence.store_folder(var_dir)
    names = _names(session, {f.added_by_id for f in files if f.added_by_id})
    organisations = {incident.organisation_id, reader_organisation_id}
    records = evidence.custody(
        session=session, incident_id=incident.id, organisation_ids=organisations
    )
    data = referral.ReferralInput(
        language=language,
        incident=summary,
        articles=[
            referral.Article(number=n, name=labels.articles.get(n, ""))
            for n in incident.criminal_code or []
        ],
        timeline=entries,
        observables=[
            referral.Observable(kind=o.kind, value=o.value)
            for o in service.observables(session=session, incident_id=incident.id)
        ],
        evidence=[
            referral.EvidenceFile(
                name=f.name,
                sha256=f.sha256,
                size=f.size,
                path=evidence.stored_path(root, f.sha256),
                added_by=names.get(f.added_by_id or 0),
                added_at=f.added_at,
            )
            for f in files
        ],
        custody=[
            referral.CustodyEntry(
                time=r.time, actor=r.actor_name or r.actor, action=r.action, sha256=r.sha256
            )
            for r in records
        ],
        generated_by=names.get(actor_id)
        or _names(session, {actor_id}).get(actor_id, str(actor_id)),
        generated_at=utcnow(),
    )
    var_dir.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix="referral-", suffix=".zip", dir=var_dir)
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as out:
            manifest = referral.build_package(data, signing_key=signing_key(var_dir), out=out)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    service.event(
        session,
        incident,
        actor_id,
        "referral",
        {
            "language": language,
            "signer": manifest.fingerprint,
            "evidence": len(files),
            "severity": RANK_SEVERITY[incident.severity].value,
        },
        organisation_id=reader_organisation_id,
    )
    return Exported(path, manifest, f"{summary.reference}-referral-{language}.zip")


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(
        session.execute(select(User.id, User.display_name).where(User.id.in_(sorted(ids)))).all()
    )
