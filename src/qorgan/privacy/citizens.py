"""Citizens' accounts and what a citizen sees of their own record.

A citizen is a user with the role ``citizen`` in the portal's own organisation
(:data:`CITIZENS`), tied to exactly one data subject (:class:`CitizenAccount`). They sign in
with their IIN, a password and a second factor; the IIN finds the account through its keyed
hash, never stored in clear. The account records how the identity was established
(``provider``): ``password`` here; eGov's OpenID Connect is a second provider that finds the
same account by its subject identifier (``provider_subject``) once it is connected.

Staff never read a citizen's record without it showing in that citizen's access log:
:func:`record_staff_read` writes the entry, and the pages that show a citizen's data to staff
call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qorgan.core import accounts, audit
from qorgan.core.errors import QorganError
from qorgan.core.identifiers import IdentifierError, parse_iin
from qorgan.core.models import Organisation, OrganisationKind, Role, User
from qorgan.privacy import consents as consent_service
from qorgan.privacy.decisions import subject_for, subject_log
from qorgan.privacy.models import (
    AccessRecord,
    CitizenAccount,
    Complaint,
    Consent,
    InformationSystem,
    LegalBasis,
    Outcome,
    Subject,
)
from qorgan.privacy.protection import Protection

#: The portal's organisation: citizens' accounts live there, apart from every body's staff.
CITIZENS = "Citizens (personal-data portal)"


class CitizenError(QorganError):
    """A citizen's account cannot be made or found as asked; the message is fit for the user."""


def citizens_organisation(session: Session) -> Organisation:
    """The portal's organisation, made on first use (safe when two make it at once)."""
    found = session.scalar(select(Organisation).where(Organisation.name == CITIZENS))
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = accounts.create_organisation(
                session=session, actor="privacy", name=CITIZENS, kind=OrganisationKind.other
            )
    except IntegrityError:
        found = session.scalar(select(Organisation).where(Organisation.name == CITIZENS))
        assert found is not None
    return found


def register(
    *,
    session: Session,
    protection: Protection,
    iin: str,
    email: str,
    display_name: str,
    password: str,
    language: str = "kk",
    actor: str = "privacy",
) -> User:
    """A citizen's account for the person with ``iin`` (one per person). The identity is
    taken as proven by whoever calls this (a registration desk, or eGov once connected)."""
    try:
        parse_iin(iin)
    except IdentifierError as exc:
        raise CitizenError(str(exc)) from exc
    subject = subject_for(session=session, protection=protection, iin=iin)
    taken = session.scalar(
        select(CitizenAccount.user_id).where(CitizenAccount.subject_id == subject.id)
    )
    if taken is not None:
        raise CitizenError("this person already has an account")
    organisation = citizens_organisation(session)
    try:
        user = accounts.create_user(
            session=session,
            actor=actor,
            organisation_id=organisation.id,
            email=email,
            display_name=display_name,
            role=Role.citizen,
            password=password,
            language=language,
        )
    except accounts.AccountError as exc:
        raise CitizenError(str(exc)) from exc
    session.add(CitizenAccount(user_id=user.id, subject_id=subject.id))
    session.flush()
    return user


def account_by_iin(*, session: Session, protection: Protection, iin: str) -> User | None:
    """The citizen user whose IIN this is, or None (also for a malformed IIN)."""
    try:
        value = parse_iin(iin).value
    except IdentifierError:
        return None
    return session.scalar(
        select(User)
        .join(CitizenAccount, CitizenAccount.user_id == User.id)
        .join(Subject, Subject.id == CitizenAccount.subject_id)
        .where(Subject.iin_hash == protection.pseudonym(value), User.role == Role.citizen)
    )


def subject_of(*, session: Session, user: User) -> Subject | None:
    """The subject a citizen user stands for (None for anyone else)."""
    if user.role is not Role.citizen:
        return None
    return session.scalar(
        select(Subject)
        .join(CitizenAccount, CitizenAccount.subject_id == Subject.id)
        .where(CitizenAccount.user_id == user.id)
    )


@dataclass(frozen=True)
class LogEntry:
    """One line of the citizen's access log, in the terms the page shows."""

    at: datetime
    outcome: str
    reason: str
    who: str  # the system and its operator, or the organisation whose staff read it
    official: str
    purpose: str
    legal_basis: str
    categories: list[str]


@dataclass(frozen=True)
class Record:
    """Everything the service holds about one citizen that the citizen may see."""

    log: list[LogEntry]
    consents: list[tuple[Consent, InformationSystem]]
    complaints: list[Complaint]


def record(*, session: Session, subject: Subject, today: date) -> Record:
    """The citizen's record as the portal shows it (hidden entries only once due)."""
    systems: dict[int, InformationSystem] = {}
    organisations: dict[int, str] = {}

    def system(system_id: int) -> InformationSystem:
        if system_id not in systems:
            found = session.get(InformationSystem, system_id)
            assert found is not None
            systems[system_id] = found
        return systems[system_id]

    def organisation(organisation_id: int | None) -> str:
        if organisation_id is None:
            return ""
        if organisation_id not in organisations:
            found = session.get(Organisation, organisation_id)
            organisations[organisation_id] = found.name if found else ""
        return organisations[organisation_id]

    log = []
    for row in subject_log(session=session, subject_id=subject.id, today=today):
        if row.system_id is not None:
            who = f"{system(row.system_id).name} ({system(row.system_id).operator_name})"
        else:
            who = organisation(row.organisation_id)
        log.append(
            LogEntry(
                at=row.at,
                outcome=row.outcome.value,
                reason=row.reason,
                who=who,
                official=row.official,
                purpose=row.purpose,
                legal_basis=row.legal_basis.value,
                categories=list(row.categories),
            )
        )
    consents = [
        (c, system(c.system_id))
        for c in consent_service.of_subject(session=session, subject_id=subject.id)
    ]
    complaints = list(
        session.scalars(
            select(Complaint)
            .where(Complaint.subject_id == subject.id)
            .order_by(Complaint.filed_at.desc(), Complaint.id.desc())
        )
    )
    return Record(log, consents, complaints)


def record_staff_read(
    *,
    session: Session,
    subject_id: int,
    staff: User,
    purpose: str,
    now: datetime | None = None,
) -> AccessRecord:
    """Put a member of staff's reading of the citizen's data in the citizen's access log
    (and the audit trail)."""
    row = AccessRecord(
        subject_id=subject_id,
        staff_id=staff.id,
        organisation_id=staff.organisation_id,
        at=now or datetime.now(UTC),
        outcome=Outcome.reported,
        reason="staff_read",
        official=staff.display_name[:200],
        purpose=purpose[:200],
        legal_basis=LegalBasis.legal_obligation,
        categories=["general"],
    )
    session.add(row)
    session.flush()
    audit.record(
        "privacy.subject_read",
        session=session,
        actor=str(staff.id),
        organisation_id=staff.organisation_id,
        target_type="privacy_subject",
        target_id=subject_id,
        details={"purpose": purpose[:200]},
    )
    return row
