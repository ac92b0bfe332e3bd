"""The personal-data service's tables: the registry of information systems, data subjects (by a
keyed hash of their IIN, never the clear number), consents, and the access log of decisions and
reported accesses that the citizen reads.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from qorgan.core.db import Base, UTCDateTime, utcnow
from qorgan.core.models import _enum


class DataCategory(StrEnum):
    """Categories of personal data (Law 94-V: general, restricted-access; biometric and special
    categories such as health, religion or criminal record, which need more care)."""

    general = "general"
    restricted = "restricted"
    biometric = "biometric"
    special = "special"


class LegalBasis(StrEnum):
    """Why a system may process a subject's data: consent, or one of the cases of Art. 9 of Law
    94-V where consent is not needed."""

    consent = "consent"
    legal_obligation = "legal_obligation"  # a duty the law puts on the holder
    contract = "contract"  # a contract the subject is party to
    state_service = "state_service"  # a public service the subject asked for
    law_enforcement = "law_enforcement"  # courts, investigations, enforcement proceedings
    vital_interests = "vital_interests"  # the subject's life or health, consent impossible
    public_data = "public_data"  # data the subject made public


class ConsentStatus(StrEnum):
    active = "active"
    withdrawn = "withdrawn"
    expired = "expired"  # its term ended
    fulfilled = "fulfilled"  # its purpose was achieved


class Outcome(StrEnum):
    allow = "allow"
    deny = "deny"
    reported = "reported"  # an access the system reported, not asked about


class InformationSystem(Base):
    """A system that asks the service before reading personal data: who owns and who operates
    it (names and BINs), the person responsible and their contacts (encrypted), what data it
    holds and for which purposes and legal bases it may ask. It authenticates with its own
    token (only its SHA-256 is kept)."""

    __tablename__ = "privacy_systems"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    owner_name: Mapped[str] = mapped_column(String(300))
    owner_bin: Mapped[str] = mapped_column(String(12))
    operator_name: Mapped[str] = mapped_column(String(300))
    operator_bin: Mapped[str] = mapped_column(String(12))
    responsible_person: Mapped[str] = mapped_column(String(200))
    #: The responsible person's contacts, encrypted (:mod:`qorgan.privacy.protection`).
    contacts: Mapped[bytes] = mapped_column(LargeBinary)
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    legal_bases: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class Subject(Base):
    """A data subject, known by the keyed hash of their IIN (HMAC-SHA256 under the service's
    key): the same person is the same row whichever system asks, and the table alone names
    nobody."""

    __tablename__ = "privacy_subjects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    iin_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Consent(Base):
    """A subject's consent to one system, with what Art. 8 of Law 94-V requires it to say:
    the operator and its BIN (from the system), purposes, the data, the term, and whether
    transfer to third parties, cross-border transfer and publication are allowed. The signed
    receipts of giving and withdrawing it are kept as issued."""

    __tablename__ = "privacy_consents"
    __table_args__ = (Index("ix_privacy_consents_subject_system", "subject_id", "system_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("privacy_subjects.id", ondelete="CASCADE"))
    system_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_systems.id", ondelete="RESTRICT"), index=True
    )
    purposes: Mapped[list[str]] = mapped_column(JSON)
    categories: Mapped[list[str]] = mapped_column(JSON)
    #: The data itself, as the consent lists it (e.g. "surname", "address").
    data_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    term_until: Mapped[date | None] = mapped_column(Date, default=None)
    third_party_transfer: Mapped[bool] = mapped_column(Boolean, default=False)
    cross_border_transfer: Mapped[bool] = mapped_column(Boolean, default=False)
    publication: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Why the law forbids withdrawing it (Art. 8(5)), or None when it may be withdrawn.
    withdrawal_restriction: Mapped[str | None] = mapped_column(String(500), default=None)
    status: Mapped[ConsentStatus] = mapped_column(
        _enum(ConsentStatus, "privacy_consent_status"), default=ConsentStatus.active
    )
    given_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    given_receipt: Mapped[str] = mapped_column(Text)
    withdrawn_receipt: Mapped[str | None] = mapped_column(Text, default=None)
    #: Once the consent ends: when the holder must have deleted the data, and when it said so.
    deletion_due: Mapped[date | None] = mapped_column(Date, default=None)
    deletion_confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AccessRecord(Base):
    """One entry of a subject's access log: a decision the service made (allow or deny, with
    its reason) or an access a system reported, with the facts Estonia's Data Tracker records:
    when, which system, on behalf of which official, for what purpose, under which basis, which
    categories. An access hidden by law (a pre-trial investigation) carries until when and who
    may see it meanwhile; the citizen sees it once that date has passed."""

    __tablename__ = "privacy_access_log"
    __table_args__ = (
        Index("ix_privacy_access_log_subject_at", "subject_id", "at"),
        UniqueConstraint("system_id", "request_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(ForeignKey("privacy_subjects.id", ondelete="CASCADE"))
    #: The system that asked or read; None when a member of staff read the subject's record in
    #: Qorgan itself (a complaint, a leak report): then ``staff_id`` and ``organisation_id``.
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("privacy_systems.id", ondelete="RESTRICT"), index=True, default=None
    )
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), default=None
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[Outcome] = mapped_column(_enum(Outcome, "privacy_outcome"))
    #: A stable code for the reason (``consent``, ``no_consent``, ``purpose_not_registered``...).
    reason: Mapped[str] = mapped_column(String(64))
    official: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(200))
    legal_basis: Mapped[LegalBasis] = mapped_column(_enum(LegalBasis, "privacy_legal_basis"))
    categories: Mapped[list[str]] = mapped_column(JSON)
    consent_id: Mapped[int | None] = mapped_column(
        ForeignKey("privacy_consents.id", ondelete="SET NULL"), default=None
    )
    hidden_until: Mapped[date | None] = mapped_column(Date, default=None)
    #: On what grounds an entry is hidden from the subject, and who may see it meanwhile.
    hidden_because: Mapped[str | None] = mapped_column(String(500), default=None)
    hidden_visible_to: Mapped[str | None] = mapped_column(String(300), default=None)
    #: The system's own id for the request, so a retried request is recorded once.
    request_id: Mapped[str | None] = mapped_column(String(100), default=None)


class CitizenAccount(Base):
    """How a citizen signs in to see their own record: a user (role ``citizen``) tied to one
    subject. ``provider`` says how the identity was established: ``password`` (an IIN, a
    password and a second factor, here) or, later, ``egov`` (eGov's OpenID Connect, whose
    subject identifier goes in ``provider_subject``)."""

    __tablename__ = "privacy_citizen_accounts"
    __table_args__ = (UniqueConstraint("provider", "provider_subject"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_subjects.id", ondelete="CASCADE"), unique=True
    )
    provider: Mapped[str] = mapped_column(String(32), default="password")
    provider_subject: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ComplaintKind(StrEnum):
    complaint = "complaint"  # to the organisation's DPO about the handling of their data
    objection = "objection"  # to automated processing of their data


class ComplaintStatus(StrEnum):
    open = "open"
    answered = "answered"


class Complaint(Base):
    """A citizen's complaint with what the authorised body asks for: the organisation, the
    period and dates concerned, a description and evidence; the organisation's DPO must
    answer by ``due_at`` (Kazakh working days). An objection to automated processing is the
    same record of another kind."""

    __tablename__ = "privacy_complaints"
    __table_args__ = (
        Index("ix_privacy_complaints_organisation_status", "organisation_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[ComplaintKind] = mapped_column(_enum(ComplaintKind, "privacy_complaint_kind"))
    subject_id: Mapped[int] = mapped_column(
        ForeignKey("privacy_subjects.id", ondelete="CASCADE"), index=True
    )
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT")
    )
    system_id: Mapped[int | None] = mapped_column(
        ForeignKey("privacy_systems.id", ondelete="RESTRICT"), default=None
    )
    #: The complainant's name and contacts, encrypted (:mod:`qorgan.privacy.protection`).
    contacts: Mapped[bytes] = mapped_column(LargeBinary)
    period_from: Mapped[date | None] = mapped_column(Date, default=None)
    period_to: Mapped[date | None] = mapped_column(Date, default=None)
    description: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[ComplaintStatus] = mapped_column(
        _enum(ComplaintStatus, "privacy_complaint_status"), default=ComplaintStatus.open
    )
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answer: Mapped[str | None] = mapped_column(Text, default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    answered_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
