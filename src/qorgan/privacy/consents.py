"""Consents: given and withdrawn through the service, each with a receipt the service signs
(:mod:`qorgan.privacy.receipts`), and followed after they end until the holder confirms that
it deleted the data.

- **Giving** checks the consent against the registry (the system must be registered for
  consent as a basis, and for each purpose and category the consent names) and records what
  Art. 8 of Law 94-V requires it to say.
- **Withdrawing** is refused, with the reason, where the law forbids it (Art. 8(5): the
  consent's ``withdrawal_restriction`` names the law, e.g. a contract not yet fulfilled or a
  duty to keep data). Two withdrawals at the same instant make one: the status changes only
  where it is still active.
- **Ending**: a consent whose term has passed is marked expired by :func:`sweep`, one whose
  purpose is achieved by :func:`fulfil`; from then on the holder must delete the data within
  :data:`DELETION_DAYS` and say so (:func:`confirm_deletion`); :func:`overdue` lists those
  that did not.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from qorgan.core import audit
from qorgan.core.errors import QorganError
from qorgan.privacy.decisions import subject_for
from qorgan.privacy.models import (
    Consent,
    ConsentStatus,
    DataCategory,
    InformationSystem,
    LegalBasis,
    Subject,
)
from qorgan.privacy.protection import Protection
from qorgan.privacy.receipts import Controller, Receipt, ReceiptError, sign_receipt

#: Days the holder has to delete the data once a consent has ended.
DELETION_DAYS = 30
ACTOR = "privacy"


class ConsentError(QorganError):
    """A consent cannot be given, withdrawn or closed as asked; the message says why."""


@dataclass(frozen=True)
class ConsentIn:
    subject_iin: str
    purposes: Sequence[str]
    categories: Sequence[str]
    data_items: Sequence[str]
    term_until: date | None = None
    third_party_transfer: bool = False
    cross_border_transfer: bool = False
    publication: bool = False
    #: Where the law forbids withdrawing it: which law, and why (shown to the subject).
    withdrawal_restriction: str | None = None
    language: str = "ru"


def signed(
    *,
    system: InformationSystem,
    subject: Subject,
    consent: Consent,
    event: str,
    moment: datetime,
    language: str,
    key: Ed25519PrivateKey,
) -> str:
    """The signed receipt of giving or withdrawing ``consent`` (the subject by pseudonym)."""
    receipt = Receipt(
        event=event,
        event_time=moment,
        subject_id=subject.iin_hash,
        controller=Controller(name=system.operator_name, bin=system.operator_bin),
        processor=system.name,
        purposes=tuple(consent.purposes),
        legal_basis=LegalBasis.consent.value,
        data=tuple(consent.data_items or consent.categories),
        term_until=consent.term_until,
        third_party_transfer=consent.third_party_transfer,
        cross_border_transfer=consent.cross_border_transfer,
        publication_in_public_sources=consent.publication,
        withdrawable=consent.withdrawal_restriction is None,
        language=language,
    )
    return sign_receipt(receipt, key).decode("utf-8")


def give(
    *,
    session: Session,
    protection: Protection,
    key: Ed25519PrivateKey,
    system: InformationSystem,
    consent: ConsentIn,
    now: datetime | None = None,
) -> Consent:
    """Record the subject's consent to ``system`` with its signed receipt."""
    now = now or datetime.now(UTC)
    if LegalBasis.consent.value not in system.legal_bases:
        raise ConsentError("the system is not registered to process data on consent")
    purposes = list(dict.fromkeys(" ".join(p.split()) for p in consent.purposes))
    unknown = [p for p in purposes if p not in system.purposes]
    if not purposes or unknown:
        raise ConsentError("a consent names purposes registered for the system, at least one")
    try:
        categories = sorted({DataCategory(c).value for c in consent.categories})
    except ValueError:
        raise ConsentError("unknown data category") from None
    if not categories or not set(categories) <= set(system.categories):
        raise ConsentError("a consent names data categories the system is registered to hold")
    if consent.term_until is not None and consent.term_until < now.date():
        raise ConsentError("the consent's term has already ended")
    restriction = " ".join((consent.withdrawal_restriction or "").split()) or None
    subject = subject_for(session=session, protection=protection, iin=consent.subject_iin)
    row = Consent(
        subject_id=subject.id,
        system_id=system.id,
        purposes=purposes,
        categories=categories,
        data_items=list(dict.fromkeys(i.strip() for i in consent.data_items if i.strip())),
        term_until=consent.term_until,
        third_party_transfer=consent.third_party_transfer,
        cross_border_transfer=consent.cross_border_transfer,
        publication=consent.publication,
        withdrawal_restriction=restriction,
        given_at=now,
    )
    try:
        row.given_receipt = signed(
            system=system,
            subject=subject,
            consent=row,
            event="given",
            moment=now,
            language=consent.language,
            key=key,
        )
    except (ReceiptError, ValueError) as exc:
        raise ConsentError(str(exc)) from exc
    session.add(row)
    session.flush()
    audit.record(
        "privacy.consent_give",
        session=session,
        actor=ACTOR,
        organisation_id=system.organisation_id,
        target_type="privacy_consent",
        target_id=row.id,
        details={"system": system.id},
    )
    return row


def withdraw(
    *,
    session: Session,
    key: Ed25519PrivateKey,
    consent_id: int,
    language: str = "ru",
    now: datetime | None = None,
) -> Consent:
    """Withdraw the consent (its subject asked); refused, with the law's reason, where the law
    forbids it, and once it is no longer active. The status changes only where it is still
    active, so of two withdrawals at the same instant one succeeds and the other is told."""
    now = now or datetime.now(UTC)
    row = session.get(Consent, consent_id)
    if row is None:
        raise ConsentError("no such consent")
    if row.withdrawal_restriction:
        raise ConsentError(f"this consent cannot be withdrawn: {row.withdrawal_restriction}")
    if row.status is not ConsentStatus.active:
        raise ConsentError(f"this consent is already {row.status.value}")
    system = session.get(InformationSystem, row.system_id)
    subject = session.get(Subject, row.subject_id)
    assert system is not None and subject is not None
    receipt = signed(
        system=system,
        subject=subject,
        consent=row,
        event="withdrawn",
        moment=now,
        language=language,
        key=key,
    )
    changed = session.execute(
        update(Consent)
        .where(Consent.id == row.id, Consent.status == ConsentStatus.active)
        .values(
            status=ConsentStatus.withdrawn,
            ended_at=now,
            withdrawn_receipt=receipt,
            deletion_due=now.date() + timedelta(days=DELETION_DAYS),
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise ConsentError("this consent is already withdrawn")
    session.refresh(row)
    audit.record(
        "privacy.consent_withdraw",
        session=session,
        actor=ACTOR,
        organisation_id=system.organisation_id,
        target_type="privacy_consent",
        target_id=row.id,
    )
    return row


def _end(session: Session, consent_ids: list[int], status: ConsentStatus, now: datetime) -> int:
    if not consent_ids:
        return 0
    return session.execute(
        update(Consent)
        .where(Consent.id.in_(consent_ids), Consent.status == ConsentStatus.active)
        .values(status=status, ended_at=now, deletion_due=now.date() + timedelta(DELETION_DAYS))
        .execution_options(synchronize_session=False)
    ).rowcount


def sweep(*, session: Session, now: datetime | None = None) -> int:
    """Mark active consents whose term has passed as expired (their deletion now due); how
    many. Run on a schedule (``qorgan privacy sweep``) and safe to run twice at once."""
    now = now or datetime.now(UTC)
    ended = list(
        session.scalars(
            select(Consent.id).where(
                Consent.status == ConsentStatus.active, Consent.term_until < now.date()
            )
        )
    )
    return _end(session, ended, ConsentStatus.expired, now)


def fulfil(*, session: Session, consent: Consent, actor: str, now: datetime | None = None) -> None:
    """The holder says the consent's purpose is achieved: the consent ends, deletion is due."""
    now = now or datetime.now(UTC)
    if _end(session, [consent.id], ConsentStatus.fulfilled, now) != 1:
        raise ConsentError(f"this consent is already {consent.status.value}")
    session.refresh(consent)
    system = session.get(InformationSystem, consent.system_id)
    assert system is not None
    audit.record(
        "privacy.consent_fulfil",
        session=session,
        actor=actor,
        organisation_id=system.organisation_id,
        target_type="privacy_consent",
        target_id=consent.id,
    )


def confirm_deletion(
    *, session: Session, consent: Consent, actor: str, now: datetime | None = None
) -> None:
    """The holder confirms it deleted the data of an ended consent."""
    if consent.status is ConsentStatus.active:
        raise ConsentError("the consent is still active: nothing is to be deleted yet")
    if consent.deletion_confirmed_at is not None:
        raise ConsentError("the deletion was already confirmed")
    consent.deletion_confirmed_at = now or datetime.now(UTC)
    system = session.get(InformationSystem, consent.system_id)
    assert system is not None
    audit.record(
        "privacy.deletion_confirmed",
        session=session,
        actor=actor,
        organisation_id=system.organisation_id,
        target_type="privacy_consent",
        target_id=consent.id,
    )


def overdue(*, session: Session, organisation_ids: Collection[int], today: date) -> list[Consent]:
    """Ended consents of the organisations' systems whose data should have been deleted by now
    and whose deletion nobody confirmed, oldest due first."""
    return list(
        session.scalars(
            select(Consent)
            .join(InformationSystem, InformationSystem.id == Consent.system_id)
            .where(
                InformationSystem.organisation_id.in_(list(organisation_ids)),
                Consent.status != ConsentStatus.active,
                Consent.deletion_confirmed_at.is_(None),
                Consent.deletion_due < today,
            )
            .order_by(Consent.deletion_due, Consent.id)
        )
    )


def of_subject(*, session: Session, subject_id: int) -> list[Consent]:
    """A subject's consents, newest first (the citizen's page)."""
    return list(
        session.scalars(
            select(Consent)
            .where(Consent.subject_id == subject_id)
            .order_by(Consent.given_at.desc(), Consent.id.desc())
        )
    )
