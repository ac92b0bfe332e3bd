"""Public reports: a citizen or an organisation reports an incident, a phishing or fraud site
or a pyramid scheme through the public form (no account), with the fields the national
guidance asks for; the report opens an incident in triage for the national coordinator and
gives the reporter a tracking number to follow its status.

The reporter's name and contacts are stored on the report only (``public_reports``): the
incident's title, its timeline, the audit trail and the logs never hold them. The status the
reporter sees (:func:`status`) is the incident's phase in plain words, and nothing else.

Supporting files (at most :data:`MAX_FILES` of :data:`MAX_FILE_BYTES` each) become the
incident's evidence (``qorgan.incidents.evidence``): the coordinator opens them from the
incident, with their chain of custody. They are stored under neutral names
(``report-file-1.png``), since a file's name is written to the audit trail and a citizen's
may carry a name; the name as sent is kept in the evidence's description. The store fsyncs a
file before the report's unit of work commits, so an acknowledged report's files are durable
with it; a file stored for a report that is then refused stays unnamed in the store
(harmless, reached only by its hash).

Service functions take ``*, session`` and never commit. Refusals are :class:`ReportError`s
naming the form field at fault; their messages are listed for translation by the web layer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from io import BytesIO
from ipaddress import ip_address
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sqlalchemy import select

from qorgan.core import audit
from qorgan.core.db import utcnow
from qorgan.core.errors import QorganError
from qorgan.core.i18n import DEFAULT_LANGUAGE, LANGUAGES
from qorgan.core.models import Organisation, OrganisationKind
from qorgan.incidents import clocks, evidence, service
from qorgan.incidents.lifecycle import IncidentError, Status
from qorgan.incidents.models import Incident, PublicReport

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.orm import Session

    from qorgan.core.workdays import WorkCalendar

#: What can be reported, as the form offers it.
KINDS = ("incident", "phishing-site", "fraud-site", "pyramid-scheme", "other")
#: Kinds that are about a web site: the site's address is required.
SITE_KINDS = frozenset({"phishing-site", "fraud-site"})
#: How each kind reads in an incident's title (the coordinator's data, in English).
KIND_TITLES = {
    "incident": "Reported incident",
    "phishing-site": "Reported phishing site",
    "fraud-site": "Reported fraud site",
    "pyramid-scheme": "Reported pyramid scheme",
    "other": "Public report",
}
MAX_NAME = 200
MAX_EMAIL = 254
MAX_PHONE = 32
MAX_ORGANISATION = 300
MAX_URL = 2000
MIN_DESCRIPTION = 10
MAX_DESCRIPTION = 20_000
MAX_FILES = 3
MAX_FILE_BYTES = 4 << 20
MAX_FILE_NAME = 255
#: The earliest date a reported period may begin.
EARLIEST = date(2000, 1, 1)
#: A tracking number: ``QR-`` and 12 characters of Crockford's base32 (60 random bits), in
#: groups of four. The alphabet has no I, L, O or U, so a number read aloud or copied by hand
#: is read back the same (:func:`normalise_tracking` maps I and L to 1, O to 0).
TRACKING_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TRACKING_LENGTH = 12
#: The phase a reporter sees for each of the incident's (no internal detail).
PUBLIC_PHASES = {
    Status.new.value: "received",
    Status.triage.value: "assessment",
    Status.containment.value: "response",
    Status.eradication.value: "response",
    Status.recovery.value: "response",
    Status.review.value: "response",
    Status.closed.value: "closed",
}
#: What the incident's timeline says moved a report's incident to triage.
TRIAGE_REASON = "public report"

# An e-mail address as people type them: a local part without spaces, and a domain of
# letters (any script: .қаз), digits and hyphens, with a top-level part of letters.
_EMAIL = re.compile(
    r"""[^\s@"<>(),;:\\\[\]]{1,64}        # local part
        @(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+  # domain labels
        [^\W\d_]{2,63}                    # top-level domain
    """,
    re.VERBOSE,
)
# A phone number: digits with spaces, dashes, dots and brackets, "+" only in front.
_PHONE = re.compile(r"\+?[\d\s().-]+")
_HOST_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_MEDIA_TYPE = re.compile(r"[\w.+-]{1,50}/[\w.+-]{1,49}")
#: Unicode categories taken out of a file's name: controls, format characters (bidirectional
#: and zero-width ones), line and paragraph separators, lone surrogates.
_UNSHOWN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


class ReportError(QorganError):
    """A report cannot be accepted as given; ``field`` names the form field at fault."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, source=field)
        self.field = field


class ReportNotFound(ReportError):
    """No report has this tracking number (or it is not one)."""


class NoCoordinator(ReportError):
    """No organisation acts as national coordinator: reports cannot be received."""


@dataclass(frozen=True, slots=True)
class Attachment:
    """A supporting file as sent: its name, declared media type and content."""

    name: str
    media_type: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Submission:
    """What the form gives; :func:`check` returns it cleaned (trimmed, normalised)."""

    kind: str
    reporter_name: str
    description: str
    email: str = ""
    phone: str = ""
    organisation_involved: str = ""
    url: str = ""
    period_from: date | None = None
    period_to: date | None = None
    language: str = DEFAULT_LANGUAGE
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class ReportStatus:
    """What the reporter may see of a report."""

    tracking: str
    kind: str
    submitted_at: datetime
    #: ``received``, ``assessment``, ``response`` or ``closed`` (:data:`PUBLIC_PHASES`).
    phase: str
    closed: bool


def _storable(value: str, name: str) -> None:
    """Refuse text no database can store (NUL, lone surrogates) and control characters other
    than tabs and line breaks (which one-line fields turn into spaces)."""
    if "\x00" in value:
        raise ReportError("text cannot contain NUL characters", field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportError("text cannot contain unpaired surrogate characters", field=name) from None
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
        raise ReportError("text cannot contain control characters", field=name)


def parse_date(value: str, name: str) -> date | None:
    """A form's date (``YYYY-MM-DD``; blank is None)."""
    text = value.strip()
    if not text:
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ReportError("not a date (YYYY-MM-DD)", field=name)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError("not a date (YYYY-MM-DD)", field=name) from None


def _clean_url(value: str) -> str:
    """A web address with its scheme (``http://`` added when none is given) and a host name
    or address; refused otherwise."""
    if len(value) > MAX_URL:
        raise ReportError("a web address has at most 2,000 characters", field="url")
    text = value if "://" in value else f"http://{value}"
    invalid = ReportError("the web address is not valid (https://example.kz/...)", field="url")
    if any(c.isspace() for c in text):
        raise invalid
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise invalid from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise invalid
    if not _is_ip(host):
        labels = host.rstrip(".").split(".")
        if len(labels) < 2 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
            raise invalid
    if len(text) > MAX_URL:
        raise ReportError("a web address has at most 2,000 characters", field="url")
    return text


def _clean_file(attachment: Attachment) -> Attachment:
    """The file with a plain name (no folders, no control, format, separator or surrogate
    characters: nothing that hides or reorders what is shown) and a well-formed media type
    (else ``application/octet-stream``), within the size limit."""
    name = attachment.name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in _UNSHOWN).strip()
    if len(name) > MAX_FILE_NAME:
        _stem, dot, extension = name.rpartition(".")
        keep = f"{dot}{extension}" if dot and len(extension) <= 16 else ""
        name = name[: MAX_FILE_NAME - len(keep)] + keep
    media_type = attachment.media_type.strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type):
        media_type = "application/octet-stream"
    if not attachment.content:
        raise ReportError("a file is empty", field="files")
    if len(attachment.content) > MAX_FILE_BYTES:
        raise ReportError("a file is larger than 4 MiB", field="files")
    return Attachment(name or "file", media_type, attachment.content)


def check(submission: Submission, *, today: date) -> Submission:
    """The submission trimmed and normalised, or the first :class:`ReportError` found, in
    the form's order. ``today`` is the coordinator's date (a period cannot end after it)."""
    s = submission
    texts = {
        "kind": s.kind,
        "description": s.description,
        "reporter_name": s.reporter_name,
        "email": s.email,
        "phone": s.phone,
        "organisation_involved": s.organisation_involved,
        "url": s.url,
        "language": s.language,
    }
    for name, value in texts.items():
        _storable(value, name)
    _storable(s.description, "description")
    kind = s.kind.strip()
    if kind not in KINDS:
        raise ReportError("choose what you are reporting", field="kind")
    name = " ".join(s.reporter_name.split())
    if not name:
        raise ReportError("a name is required", field="reporter_name")
    if len(name) > MAX_NAME:
        raise ReportError("a name has at most 200 characters", field="reporter_name")
    email = s.email.strip()
    if len(email) > MAX_EMAIL:
        raise ReportError("an e-mail address has at most 254 characters", field="email")
    if email and not _EMAIL.fullmatch(email):
        raise ReportError("the e-mail address is not valid (name@example.kz)", field="email")
    phone = " ".join(s.phone.split())
    digits = sum(c.isdigit() for c in phone)
    if phone and (
        len(phone) > MAX_PHONE
        or not _PHONE.fullmatch(phone)
        or not 7 <= digits <= 15
        or not phone.isascii()
    ):
        raise ReportError("the phone number is not valid (+7 701 234 56 78)", field="phone")
    if not email and not phone:
        raise ReportError(
            "give an e-mail address or a phone number, so that the coordinator can reach you",
            field="email",
        )
    organisation = " ".join(s.organisation_involved.split())
    if len(organisation) > MAX_ORGANISATION:
        raise ReportError(
            "the organisation's name has at most 300 characters", field="organisation_involved"
        )
    url = _clean_url(s.url.strip()) if s.url.strip() else ""
    if kind in SITE_KINDS and not url:
        raise ReportError("give the site's web address", field="url")
    if kind == "pyramid-scheme" and not (url or organisation):
        raise ReportError(
            "name the scheme's organisation or give its web address",
            field="organisation_involved",
        )
    for moment, where in ((s.period_from, "period_from"), (s.period_to, "period_to")):
        if moment is not None and not EARLIEST <= moment <= today:
            raise ReportError("a date must be between 2000-01-01 and today", field=where)
    if s.period_from and s.period_to and s.period_to < s.period_from:
        raise ReportError("the period ends before it begins", field="period_to")
    description = s.description.strip()
    if len(description) < MIN_DESCRIPTION:
        raise ReportError("describe what happened (at least 10 characters)", field="description")
    if len(description) > MAX_DESCRIPTION:
        raise ReportError("a description has at most 20,000 characters", field="description")
    if len(s.attachments) > MAX_FILES:
        raise ReportError("at most 3 files can be attached", field="files")
    # The same content chosen twice is one file.
    files = tuple(
        {hashlib.sha256(a.content).digest(): _clean_file(a) for a in s.attachments}.values()
    )
    return replace(
        s,
        kind=kind,
        reporter_name=name,
        email=email,
        phone=phone,
        organisation_involved=organisation,
        url=url,
        description=description,
        language=s.language if s.language in LANGUAGES else DEFAULT_LANGUAGE,
        attachments=files,
    )


def coordinator(session: Session) -> int:
    """The national coordinator's organisation (the first of kind ``cert``)."""
    found = session.scalar(
        select(Organisation.id)
        .where(Organisation.kind == OrganisationKind.cert)
        .order_by(Organisation.id)
        .limit(1)
    )
    if found is None:
        raise NoCoordinator("reports cannot be received now: no national coordinator is set up")
    return found


def new_tracking() -> str:
    """A fresh, unguessable tracking number: ``QR-XXXX-XXXX-XXXX``."""
    code = "".join(secrets.choice(TRACKING_ALPHABET) for _ in range(TRACKING_LENGTH))
    return "QR-" + "-".join(code[i : i + 4] for i in range(0, TRACKING_LENGTH, 4))


def normalise_tracking(text: str) -> str | None:
    """A tracking number as typed (any case, spaces or dashes, I/L for 1, O for 0) in its
    stored form; None when it cannot be one."""
    if len(text) > 64:
        return None
    code = re.sub(r"[\s\-]", "", text.upper())
    code = code.removeprefix("QR").translate(str.maketrans("ILO", "110"))
    if len(code) != TRACKING_LENGTH or any(c not in TRACKING_ALPHABET for c in code):
        return None
    return "QR-" + "-".join(code[i : i + 4] for i in range(0, TRACKING_LENGTH, 4))


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").removeprefix("www.") if url else ""


def _title(report: Submission) -> str:
    about = _host(report.url) or report.organisation_involved
    heading = KIND_TITLES[report.kind]
    return f"{heading}: {about}"[:300] if about else heading


def _incident_description(report: Submission) -> str:
    """The report as the coordinator's incident tells it: what and where, never who."""
    lines = ["Received through the public report form.", "", f"Kind: {report.kind}"]
    if report.url:
        lines.append(f"Web address: {report.url}")
    if report.organisation_involved:
        lines.append(f"Organisation involved: {report.organisation_involved}")
    if report.period_from or report.period_to:
        lines.append(f"Period: {report.period_from or '?'} to {report.period_to or '?'}")
    if report.attachments:
        lines.append(f"Supporting files: {len(report.attachments)} (with the report)")
    lines.append(f"Language: {report.language}")
    return "\n".join([*lines, "", report.description])


def submit(
    *,
    session: Session,
    submission: Submission,
    calendar: WorkCalendar,
    store_root: Path,
    challenge: str | None = None,
) -> str:
    """Accept a report: check it, open an incident in triage in the national coordinator's
    organisation (its clocks from the reported period's start, else now), store the report,
    and its files as the incident's evidence in the store at ``store_root``
    (``evidence.store_folder``). ``challenge`` is the id of the spent proof-of-work
    challenge; a challenge already spent is refused. Returns the tracking number; the caller
    commits."""
    now = utcnow()
    clean = check(submission, today=now.astimezone(calendar.zone).date())
    if challenge is not None and (not challenge or len(challenge) > 64):
        raise ReportError("the anti-spam check is not valid; reload the page", field="challenge")
    # Before any read: reports (and the replay check) go in turn with every other writer.
    audit.lock(session)
    if challenge is not None and session.scalar(
        select(PublicReport.id).where(PublicReport.challenge == challenge)
    ):
        raise ReportError(
            "this form was already sent; reload the page to send another report",
            field="challenge",
        )
    organisation_id = coordinator(session)
    # The clocks count from receipt: the coordinator can do nothing before the report
    # arrives, and a report of a fraud months old would arrive already overdue. The period
    # reported stays on the report and in the incident's description.
    started = now
    incident, _ = service.create(
        session=session,
        organisation_id=organisation_id,
        actor_id=None,
        draft=service.Draft(
            title=_title(clean),
            description=_incident_description(clean),
            tags=["public-report", clean.kind],
        ),
        calendar=calendar,
        origin="report",
        started_at=started,
    )
    _to_triage(session, incident)
    tracking = new_tracking()
    while session.scalar(select(PublicReport.id).where(PublicReport.tracking == tracking)):
        tracking = new_tracking()  # 60 random bits: practically never
    report = PublicReport(
        tracking=tracking,
        incident_id=incident.id,
        organisation_id=organisation_id,
        kind=clean.kind,
        reporter_name=clean.reporter_name,
        email=clean.email or None,
        phone=clean.phone or None,
        organisation_involved=clean.organisation_involved,
        url=clean.url or None,
        period_from=clean.period_from,
        period_to=clean.period_to,
        description=clean.description,
        language=clean.language,
        challenge=challenge,
        created_at=now,
    )
    session.add(report)
    session.flush()
    for number, attachment in enumerate(clean.attachments, start=1):
        _attach(session, store_root, incident, number, attachment)
    if clean.url and len(clean.url) <= 500:
        host = urlsplit(clean.url).hostname or ""
        for kind, value in (("url", clean.url), ("ip" if _is_ip(host) else "domain", host)):
            service.add_observable(
                session=session,
                organisation_id=organisation_id,
                incident_id=incident.id,
                actor_id=None,  # type: ignore[arg-type] - the system, for the public form
                kind=kind,
                value=value,
            )
    session.flush()
    return tracking


def _neutral_name(number: int, name: str) -> str:
    """``report-file-<n>`` with the sent name's extension when it is a plain one."""
    extension = name.rpartition(".")[2] if "." in name else ""
    plain = extension.isascii() and extension.isalnum() and len(extension) <= 10
    return f"report-file-{number}" + (f".{extension.lower()}" if plain else "")


def _attach(
    session: Session, store_root: Path, incident: Incident, number: int, attachment: Attachment
) -> None:
    """Store a supporting file as the incident's evidence, added by the system."""
    try:
        evidence.add_evidence(
            session=session,
            store_root=store_root,
            organisation_id=incident.organisation_id,
            incident_id=incident.id,
            actor_id=None,  # type: ignore[arg-type] - the system, for the public form
            name=_neutral_name(number, attachment.name),
            stream=BytesIO(attachment.content),
            media_type=attachment.media_type,
            description=f"Sent with a public report as: {attachment.name}"[:2000],
            max_bytes=MAX_FILE_BYTES,
        )
    except IncidentError as exc:  # checked before: the store refusing it is unexpected
        raise ReportError(exc.message, field="files") from exc


def _to_triage(session: Session, incident: Incident) -> None:
    """Put a reported incident in the coordinator's triage queue. Not ``service.move``: that
    would count the report as acknowledged the moment it arrives, and the coordinator's clock
    to acknowledge it (by assigning it) must run from the report."""
    incident.status = Status.triage.value
    clocks.next_due(incident)
    service.event(
        session,
        incident,
        None,
        "status",
        {"from": Status.new.value, "to": Status.triage.value, "reason": TRIAGE_REASON},
    )


def _followed(session: Session, incident: Incident) -> Incident:
    """The incident that carries the work on: a merged one's target (a few hops at most)."""
    for _ in range(10):
        if incident.merged_into_id is None:
            break
        target = session.get(Incident, incident.merged_into_id)
        if target is None:
            break
        incident = target
    return incident


def status(*, session: Session, tracking: str) -> ReportStatus:
    """What the reporter may see of the report: its number, kind, when it was sent, the
    phase in plain words and whether it is closed. :class:`ReportNotFound` otherwise."""
    wanted = normalise_tracking(tracking)
    report = (
        session.scalar(select(PublicReport).where(PublicReport.tracking == wanted))
        if wanted
        else None
    )
    if report is None:
        raise ReportNotFound("no report has this tracking number", field="tracking")
    incident = session.get(Incident, report.incident_id)
    assert incident is not None  # a report's incident is never deleted (RESTRICT)
    current = _followed(session, incident)
    phase = PUBLIC_PHASES.get(current.status, "assessment")
    return ReportStatus(
        tracking=report.tracking,
        kind=report.kind,
        submitted_at=report.created_at,
        phase=phase,
        closed=phase == "closed",
    )


def of_incident(*, session: Session, incident_id: int, organisation_id: int) -> PublicReport | None:
    """The public report that opened the incident, for the coordinator's organisation only
    (its contacts are personal data: show them to those who work the incident)."""
    return session.scalar(
        select(PublicReport).where(
            PublicReport.incident_id == incident_id,
            PublicReport.organisation_id == organisation_id,
        )
    )
