"""The personal-data service over the API.

Information systems ask with their own token (``Authorization: Bearer qps_...``), never a
user's: ``POST /privacy/decisions`` (may we read?), ``POST /privacy/accesses`` (we read),
``POST /privacy/consents`` (the subject consented; answered with the signed receipt) and
``POST /privacy/consents/{id}/fulfil`` (its purpose is achieved; a system's own consents only).
Each answers only after its record is committed. Consents whose data should have been deleted
are listed and confirmed deleted by the organisation (``/privacy/consents/overdue``,
``/privacy/consents/{id}/deletion``). The registry is
kept by the organisation's data-protection officer (``privacy:manage``; ``privacy:read`` to
list); another organisation's system id is not found.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from qorgan.core.db import unit_of_work
from qorgan.core.roles import Permission
from qorgan.incidents.schemas import CleanText
from qorgan.privacy import consents, registry
from qorgan.privacy.batches import UnknownToken
from qorgan.privacy.consents import ConsentError, ConsentIn
from qorgan.privacy.decisions import AccessRequest, DecisionError
from qorgan.privacy.models import Consent, DataCategory, InformationSystem, LegalBasis
from qorgan.privacy.protection import protection
from qorgan.privacy.receipts import ReceiptError, receipt_key
from qorgan.privacy.registry import RegistryError, SystemIn
from qorgan.web.deps import Actor, AppState, Db, RecordId, api_actor, state

router = APIRouter(prefix="/privacy", tags=["privacy"])
Reader = Annotated[Actor, Depends(api_actor(Permission.privacy_read))]
Manager = Annotated[Actor, Depends(api_actor(Permission.privacy_manage))]

UNAUTHORISED = HTTPException(
    401, "an information system's token is required", {"WWW-Authenticate": "Bearer"}
)


class AccessIn(BaseModel):
    subject_iin: Annotated[str, Field(min_length=12, max_length=12, pattern=r"^[0-9]{12}$")]
    categories: list[DataCategory] = Field(min_length=1, max_length=4)
    purpose: Annotated[CleanText, Field(min_length=1, max_length=200)]
    legal_basis: LegalBasis
    official: Annotated[CleanText, Field(min_length=1, max_length=200)] = Field(
        description="The official on whose behalf the system reads (name or staff number)."
    )
    request_id: Annotated[CleanText, Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="The system's own id for this request: a retry returns the recorded answer.",
    )
    hidden_until: date | None = Field(
        default=None,
        description="Hide the entry from the subject until this date (law_enforcement only).",
    )
    hidden_because: Annotated[CleanText, Field(max_length=500)] | None = None
    hidden_visible_to: Annotated[CleanText, Field(max_length=300)] | None = None

    def request(self) -> AccessRequest:
        return AccessRequest(
            subject_iin=self.subject_iin,
            categories=[c.value for c in self.categories],
            purpose=self.purpose,
            legal_basis=self.legal_basis.value,
            official=self.official,
            request_id=self.request_id,
            hidden_until=self.hidden_until,
            hidden_because=self.hidden_because,
            hidden_visible_to=self.hidden_visible_to,
        )


class DecisionOut(BaseModel):
    decision: Literal["allow", "deny", "reported"]
    reason: str = Field(description="A stable code: consent, no_consent, consent_withdrawn...")
    explanation: str
    record_id: int = Field(description="The entry in the subject's access log.")
    at: datetime
    consent_id: int | None


def _token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def record(
    app: AppState, authorization: str | None, access: AccessIn, reported: bool
) -> DecisionOut:
    """Decided with the requests of the same moment in one transaction (privacy.batches),
    answered once that transaction has committed. ``qorgan.web.decision_path`` calls this
    before routing; the routes below give the API's description and the same answers."""
    token = _token(authorization)
    if not token:
        raise UNAUTHORISED
    try:
        found = await asyncio.wrap_future(app.decisions.submit(token, access.request(), reported))
    except UnknownToken:
        raise UNAUTHORISED from None
    except DecisionError as exc:
        raise HTTPException(422, str(exc)) from None
    return DecisionOut(
        decision=found.outcome.value,
        reason=found.reason,
        explanation=found.explanation,
        record_id=found.record_id,
        at=found.at,
        consent_id=found.consent_id,
    )


ERRORS = {
    401: {"description": "No or an unknown information-system token."},
    422: {"description": "The request cannot be decided as sent (the detail says why)."},
}


@router.post("/decisions", response_model=DecisionOut, responses=ERRORS)
async def decide(
    request: Request, access: AccessIn, authorization: Annotated[str | None, Header()] = None
) -> DecisionOut:
    """May the system read these categories of the subject's data for this purpose under this
    basis? Allow or deny with the reason, recorded in the subject's access log first."""
    return await record(state(request), authorization, access, False)


@router.post("/accesses", response_model=DecisionOut, status_code=201, responses=ERRORS)
async def report_access(
    request: Request, access: AccessIn, authorization: Annotated[str | None, Header()] = None
) -> DecisionOut:
    """Record an access the system made (the subject sees it in their access log)."""
    return await record(state(request), authorization, access, True)


# --------------------------------------------------------------------------- consents


class ConsentBody(BaseModel):
    """A consent the subject gave the system (at its desk or in its own service)."""

    subject_iin: Annotated[str, Field(min_length=12, max_length=12, pattern=r"^[0-9]{12}$")]
    purposes: list[Annotated[CleanText, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=32
    )
    categories: list[DataCategory] = Field(min_length=1, max_length=4)
    data_items: list[Annotated[CleanText, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=64, description="The data themselves: surname, address."
    )
    term_until: date | None = Field(default=None, description="The consent's last day.")
    third_party_transfer: bool = False
    cross_border_transfer: bool = False
    publication: bool = Field(default=False, description="Publication in public sources.")
    withdrawal_restriction: Annotated[CleanText, Field(max_length=500)] | None = Field(
        default=None, description="Where the law forbids withdrawal: which law and why."
    )
    language: Literal["kk", "ru", "en"] = "ru"


class ConsentOut(BaseModel):
    id: int
    status: str
    given_at: datetime
    receipt: str = Field(description="The signed receipt (JSON), for the subject to keep.")


class OverdueOut(BaseModel):
    id: int
    system_id: int
    status: str
    ended_at: datetime | None
    deletion_due: date | None


def _give(request: Request, token: str, body: ConsentBody) -> ConsentOut:
    app = state(request)
    keys = protection(app.settings)
    try:
        key = receipt_key(app.settings)
    except ReceiptError as exc:
        raise HTTPException(503, str(exc)) from None
    with unit_of_work(app.factory) as session:  # committed before the answer leaves
        system = registry.system_by_token(session=session, token=token) if token else None
        if system is None:
            raise UNAUTHORISED
        try:
            row = consents.give(
                session=session,
                protection=keys,
                key=key,
                system=system,
                consent=ConsentIn(
                    subject_iin=body.subject_iin,
                    purposes=body.purposes,
                    categories=[c.value for c in body.categories],
                    data_items=body.data_items,
                    term_until=body.term_until,
                    third_party_transfer=body.third_party_transfer,
                    cross_border_transfer=body.cross_border_transfer,
                    publication=body.publication,
                    withdrawal_restriction=body.withdrawal_restriction,
                    language=body.language,
                ),
            )
        except (ConsentError, DecisionError) as exc:
            raise HTTPException(422, str(exc)) from None
        return ConsentOut(
            id=row.id, status=row.status.value, given_at=row.given_at, receipt=row.given_receipt
        )


@router.post("/consents", response_model=ConsentOut, status_code=201, responses=ERRORS)
async def give_consent(
    request: Request, body: ConsentBody, authorization: Annotated[str | None, Header()] = None
) -> ConsentOut:
    """Record a consent the subject gave the system, with its signed receipt."""
    return await run_in_threadpool(_give, request, _token(authorization), body)


def _fulfil(request: Request, token: str, consent_id: int) -> ConsentOut:
    app = state(request)
    with unit_of_work(app.factory) as session:
        system = registry.system_by_token(session=session, token=token) if token else None
        if system is None:
            raise UNAUTHORISED
        row = session.get(Consent, consent_id)
        if row is None or row.system_id != system.id:
            raise HTTPException(404, "no such consent of this system")
        try:
            consents.fulfil(session=session, consent=row, actor=f"system:{system.id}")
        except ConsentError as exc:
            raise HTTPException(409, str(exc)) from None
        return ConsentOut(
            id=row.id, status=row.status.value, given_at=row.given_at, receipt=row.given_receipt
        )


@router.post("/consents/{consent_id}/fulfil", response_model=ConsentOut, responses=ERRORS)
async def fulfil_consent(
    request: Request,
    consent_id: RecordId,
    authorization: Annotated[str | None, Header()] = None,
) -> ConsentOut:
    """The consent's purpose is achieved: it ends, and deleting the data becomes due."""
    return await run_in_threadpool(_fulfil, request, _token(authorization), consent_id)


@router.get("/consents/overdue", response_model=list[OverdueOut])
def overdue_deletions(db: Db, actor: Reader) -> list[OverdueOut]:
    """Ended consents of the organisation's systems whose data should be deleted by now."""
    rows = consents.overdue(
        session=db, organisation_ids=[actor.organisation_id], today=datetime.now(UTC).date()
    )
    return [
        OverdueOut(
            id=r.id,
            system_id=r.system_id,
            status=r.status.value,
            ended_at=r.ended_at,
            deletion_due=r.deletion_due,
        )
        for r in rows
    ]


@router.post("/consents/{consent_id}/deletion", status_code=204)
def confirm_deletion(db: Db, actor: Manager, consent_id: RecordId) -> None:
    """The organisation confirms it deleted the data of an ended consent."""
    row = db.get(Consent, consent_id)
    system = db.get(InformationSystem, row.system_id) if row is not None else None
    if row is None or system is None or system.organisation_id != actor.organisation_id:
        raise HTTPException(404, "no such consent")
    try:
        consents.confirm_deletion(session=db, consent=row, actor=actor.id)
    except ConsentError as exc:
        raise HTTPException(409, str(exc)) from None
    db.commit()


# --------------------------------------------------------------------------- the registry


class SystemBody(BaseModel):
    name: Annotated[CleanText, Field(min_length=1, max_length=200)]
    owner_name: Annotated[CleanText, Field(min_length=1, max_length=300)]
    owner_bin: Annotated[str, Field(min_length=12, max_length=12)]
    operator_name: Annotated[CleanText, Field(min_length=1, max_length=300)]
    operator_bin: Annotated[str, Field(min_length=12, max_length=12)]
    responsible_person: Annotated[CleanText, Field(min_length=1, max_length=200)]
    contacts: Annotated[CleanText, Field(min_length=1, max_length=500)] = Field(
        description="How to reach the responsible person (kept encrypted)."
    )
    categories: list[DataCategory] = Field(min_length=1, max_length=4)
    purposes: list[Annotated[CleanText, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=registry.MAX_PURPOSES
    )
    legal_bases: list[LegalBasis] = Field(min_length=1, max_length=len(LegalBasis))


class SystemOut(BaseModel):
    id: int
    organisation_id: int
    name: str
    owner_name: str
    owner_bin: str
    operator_name: str
    operator_bin: str
    responsible_person: str
    categories: list[str]
    purposes: list[str]
    legal_bases: list[str]
    enabled: bool
    created_at: datetime

    @classmethod
    def of(cls, row: InformationSystem) -> SystemOut:
        return cls(
            id=row.id,
            organisation_id=row.organisation_id,
            name=row.name,
            owner_name=row.owner_name,
            owner_bin=row.owner_bin,
            operator_name=row.operator_name,
            operator_bin=row.operator_bin,
            responsible_person=row.responsible_person,
            categories=list(row.categories),
            purposes=list(row.purposes),
            legal_bases=list(row.legal_bases),
            enabled=row.enabled,
            created_at=row.created_at,
        )


class SystemCreated(SystemOut):
    token: str = Field(description="The system's decision-API token: shown this once.")


class TokenOut(BaseModel):
    token: str = Field(description="The new token: shown this once; the old one stops at once.")


@router.get("/systems", response_model=list[SystemOut])
def list_systems(db: Db, actor: Reader) -> list[SystemOut]:
    """The organisation's registered information systems."""
    rows = registry.list_systems(session=db, organisation_ids=[actor.organisation_id])
    return [SystemOut.of(r) for r in rows]


@router.post("/systems", response_model=SystemCreated, status_code=201)
def register_system(request: Request, db: Db, actor: Manager, body: SystemBody) -> SystemCreated:
    """Register an information system; its token is in the answer, once."""
    try:
        row, token = registry.register(
            session=db,
            protection=protection(state(request).settings),
            organisation_id=actor.organisation_id,
            system=SystemIn(
                name=body.name,
                owner_name=body.owner_name,
                owner_bin=body.owner_bin,
                operator_name=body.operator_name,
                operator_bin=body.operator_bin,
                responsible_person=body.responsible_person,
                contacts=body.contacts,
                categories=[c.value for c in body.categories],
                purposes=body.purposes,
                legal_bases=[b.value for b in body.legal_bases],
            ),
            actor=actor.id,
            created_by=actor.user.id,
        )
    except RegistryError as exc:
        raise HTTPException(422, str(exc)) from None
    db.commit()
    return SystemCreated(**SystemOut.of(row).model_dump(), token=token)


@router.post("/systems/{system_id}/token", response_model=TokenOut)
def rotate_system_token(db: Db, actor: Manager, system_id: RecordId) -> TokenOut:
    """A new token for the system; the old one stops working at once."""
    row = registry.get_system(
        session=db, organisation_ids=[actor.organisation_id], system_id=system_id
    )
    if row is None:
        raise HTTPException(404, "no such information system")
    token = registry.rotate_token(session=db, system=row, actor=actor.id)
    db.commit()
    return TokenOut(token=token)
