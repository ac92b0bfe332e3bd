"""API shapes of the alert store: what is ingested (``docs/alerts.md``) and what is shown.

:class:`AlertIn` is the ingestion payload, exactly the JSON ``qorgan hunt`` writes; it refuses
unknown levels, unknown keys and absurd sizes with messages fit for the sender. The other
models are read shapes for the web API: JSON-friendly (times as ISO 8601 with their offset).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from qorgan.core.timeutil import parse_time
from qorgan.incidents.models import AlertLevel, AlertStatus

#: Largest serialized ``event`` accepted (bytes of compact JSON).
MAX_EVENT_BYTES = 64 * 1024
#: Largest serialized ``classification`` accepted.
MAX_CLASSIFICATION_BYTES = 16 * 1024
#: Largest serialized ``correlation`` accepted (its ``events`` list names every event of the
#: window, about 150 bytes each).
MAX_CORRELATION_BYTES = 1024 * 1024
MAX_TAGS = 100

Level = Literal["informational", "low", "medium", "high", "critical"]


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refused on every database, so both behave the same.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: Text stored in its own column: no NUL characters.
Text = Annotated[str, AfterValidator(_no_nul)]


def _storable(value: str) -> str:
    _no_nul(value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must not contain unpaired surrogate characters") from None
    return value


#: Text people write into incidents: no NUL and no lone surrogate (neither can be stored).
CleanText = Annotated[str, AfterValidator(_storable)]
Tag = Annotated[Text, Field(min_length=1, max_length=200)]


def _json_object(value: Any, what: str, limit: int) -> dict[str, Any]:
    """``value`` as plain JSON (what the database will give back), at most ``limit`` bytes."""
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    try:
        raw = orjson.dumps(value)
    except TypeError as exc:
        raise ValueError(f"{what} is not JSON: {exc}") from None
    if len(raw) > limit:
        raise ValueError(
            f"{what} is {len(raw):,} bytes as JSON; at most {limit:,} bytes are accepted"
        )
    # Normalised through JSON: tuples become lists, NaN becomes null, so the stored body reads
    # back equal to what was fingerprinted. PostgreSQL cannot store NUL in text or JSON, and
    # log events do carry it: it is shown as U+2400 SYMBOL FOR NULL, on every database alike.
    raw = _JSON_NUL.sub(rb"\1\\u2400", raw)
    result: dict[str, Any] = orjson.loads(raw)
    return result


#: A ``\u0000`` escape in JSON text (not an escaped backslash followed by "u0000").
_JSON_NUL = re.compile(rb"(?<!\\)((?:\\\\)*)\\u0000")


class RuleRef(BaseModel):
    """The rule that fired."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Text = Field(min_length=1, max_length=200, description="The Sigma rule's id (a UUID).")
    title: Text = Field(min_length=1, max_length=500, description="The rule's title.")
    level: Level = Field(
        description="informational, low, medium, high or critical.",
    )
    tags: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="The rule's tags (attack.t1490, ...).",
    )
    status: Text | None = Field(
        default=None, max_length=50, description="The rule's status (stable, test, ...)."
    )
    path: Text = Field(max_length=4096, description="The file the rule was loaded from.")


class SourceRef(BaseModel):
    """Where the event that fired was read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Text = Field(max_length=4096, description="The log file the event was read from.")
    record: int = Field(
        ge=0,
        le=2**63 - 1,
        description="EVTX record number, 1-based line number, or the document's position.",
    )
    format: Text = Field(
        min_length=1,
        max_length=32,
        description="The format that read the file (evtx, json, syslog, ...) or correlation.",
    )


class AlertIn(BaseModel):
    """One alert as ``qorgan hunt`` writes it (docs/alerts.md): the ingestion payload."""

    model_config = ConfigDict(extra="forbid")

    rule: RuleRef = Field(description="The rule that fired.")
    time: Text | None = Field(
        max_length=64,
        description="The event's time, ISO 8601 (UTC, Z), as the source recorded it; or null.",
    )
    host: Text | None = Field(max_length=255, description="The host the event describes, or null.")
    source: SourceRef = Field(description="Where the event was read.")
    event: dict[str, Any] = Field(
        description=f"The normalised event (at most {MAX_EVENT_BYTES // 1024} KiB as JSON)."
    )
    classification: dict[str, Any] | None = Field(
        default=None,
        description="The rule's classes: kz_cert, kz_cert_label, rsit, criminal_code, attack.",
    )
    correlation: dict[str, Any] | None = Field(
        default=None,
        description="Correlation alerts only: type, value, start, end and the events' references.",
    )

    @field_validator("time")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is not None and parse_time(value) is None:
            raise ValueError(f"not an ISO 8601 time: {value[:64]!r}")
        return value

    @field_validator("event", mode="before")
    @classmethod
    def _event_size(cls, value: Any) -> dict[str, Any]:
        return _json_object(value, "event", MAX_EVENT_BYTES)

    @field_validator("classification", mode="before")
    @classmethod
    def _classification(cls, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        found = _json_object(value, "classification", MAX_CLASSIFICATION_BYTES)
        kz_cert = found.get("kz_cert")
        if kz_cert is not None and not (
            isinstance(kz_cert, str) and 0 < len(kz_cert) <= 64 and "\x00" not in kz_cert
        ):
            raise ValueError("classification.kz_cert must be a class id (text, 1-64 chars)")
        return found

    @field_validator("correlation", mode="before")
    @classmethod
    def _correlation_size(cls, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        return _json_object(value, "correlation", MAX_CORRELATION_BYTES)

    @property
    def kz_cert_class(self) -> str | None:
        """The KZ-CERT class id from ``classification.kz_cert``, when classified."""
        return self.classification.get("kz_cert") if self.classification else None

    def body(self) -> dict[str, Any]:
        """The alert as a plain JSON object in the documented shape (what is stored and
        fingerprinted): ``classification`` and ``correlation`` only when present."""
        # The models mirror the documented shape field for field: pydantic's dump is the body.
        absent = {name for name in ("classification", "correlation") if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=absent)


class AlertOut(BaseModel):
    """An alert in a list: what a row of the alert table shows."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The alert's id in the store.")
    organisation_id: int = Field(description="The organisation that received the alert.")
    rule_id: str = Field(description="The Sigma rule's id.")
    rule_title: str = Field(description="The rule's title.")
    level: AlertLevel = Field(description="The rule's level.")
    host: str | None = Field(description="The host the event describes.")
    time: datetime | None = Field(description="The event's time (UTC), when known.")
    kz_cert_class: str | None = Field(description="The KZ-CERT incident class id.")
    status: AlertStatus = Field(description="new, acknowledged or false_positive.")
    assignee_id: int | None = Field(description="The user the alert is assigned to.")
    received_at: datetime = Field(description="When the store received the alert (UTC).")


class AlertDetail(AlertOut):
    """One alert in full; its event may hold personal data, so reads are audited."""

    hunt_id: int | None = Field(description="The hunt that found the alert, if any.")
    fingerprint: str = Field(description="SHA-256 of the alert's canonical JSON.")
    body: dict[str, Any] = Field(description="The whole alert as documented in docs/alerts.md.")


class AlertGroup(BaseModel):
    """Alerts counted together by rule, host, rule and host, user or source address."""

    rule_id: str | None = Field(default=None, description="The rule (when grouped by rule).")
    rule_title: str | None = Field(default=None, description="The rule's title.")
    host: str | None = Field(
        default=None, description="The host (when grouped by host; null: alerts without one)."
    )
    user: str | None = Field(default=None, description="The user (when grouped by user).")
    address: str | None = Field(
        default=None, description="The source address (when grouped by address)."
    )
    count: int = Field(description="How many alerts.")
    first_time: datetime | None = Field(description="The earliest event time in the group.")
    last_time: datetime | None = Field(description="The latest event time in the group.")
    level: AlertLevel = Field(description="The highest level in the group.")


class GroupPage(BaseModel):
    """A page of groups, most severe first, then largest."""

    items: list[AlertGroup] = Field(description="The groups of this page.")
    total: int = Field(description="How many groups there are in all.")
    limit: int
    offset: int


class Timeline(BaseModel):
    """Alerts per hour or day and level."""

    bucket: Literal["hour", "day"] = Field(description="The bucket used.")
    points: list[TimelinePoint] = Field(description="Oldest first; empty buckets left out.")


class TriageOut(BaseModel):
    """An alert after a triage action: only what triage changes, never the event."""

    id: int
    status: AlertStatus
    assignee_id: int | None
    changed: bool = Field(description="Whether this call changed the alert.")


class BulkTriageIn(BaseModel):
    """A bulk triage action: on the alerts named, or on all alerts matching the filters given
    as the request's query parameters (``all_matching``)."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "false-positive", "reopen", "assign"]
    ids: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] | None = Field(
        default=None, max_length=100_000, description="Alerts to change."
    )
    all_matching: bool = Field(
        default=False, description="Change every alert matching the query's filters instead."
    )
    assignee_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="For assign: a user, or null for nobody."
    )


class BulkTriageOut(BaseModel):
    matched: int = Field(description="Alerts of your organisation the action applied to.")
    changed: int = Field(description="Of those, how many it changed (one audit entry each).")


class TimelinePoint(BaseModel):
    """How many alerts of one level have event times in one hour or day."""

    bucket: datetime = Field(
        description="Start of the hour or day, in the requested time zone (with its offset)."
    )
    level: AlertLevel = Field(description="The alerts' level.")
    count: int = Field(description="How many alerts.")


class IngestResult(BaseModel):
    """What one ingestion call did."""

    received: int = Field(description="Alerts in the request.")
    created: int = Field(description="Alerts stored now.")
    duplicates: int = Field(
        description="Alerts already stored (or repeated in the request), not stored again."
    )
