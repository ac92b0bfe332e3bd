"""Notifications about incidents, in the console and by e-mail: an incident assigned to you, a
deadline due soon or passed, an incident reported to your organisation as national
coordinator, and the coordinator's answer on an incident your organisation reported.

Each user chooses which kinds reach them by which channel (:data:`DEFAULTS` until they do).
Event notifications are derived from the incident's timeline (:func:`notify_for_event`, called
by ``service.event``) in the same unit of work as the change, so they are committed, or lost,
with it. Deadline notifications come from a periodic :func:`sweep_deadlines`, unique per user
and deadline (``dedup_key``), so a sweep repeated, or run by two processes at once, tells
nobody twice. E-mail is sent afterwards by :func:`deliver_email`, outside any incident's
transaction: each message is claimed for a while (so two notifiers never send it both), sent
through SMTP, and marked sent, or kept pending with the error and retried later, up to
:data:`MAX_ATTEMPTS`. A :class:`Notifier` thread runs both in the console; ``qorgan incidents
notify`` runs them once (from cron).

Recipients are always members of the incident's organisation, or of the coordinator it was
reported to, who may both read it. E-mails carry the incident's reference, title (not for
TLP:RED) and a link, never a message's text; logs and recorded errors never carry addresses.
Service functions take ``*, session`` and never commit; :func:`deliver_email`, :func:`run_once`
and the :class:`Notifier` own their units of work, as they talk to an SMTP server between them.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, select, update

from qorgan.core import audit
from qorgan.core.db import queue_writer, unit_of_work, utcnow
from qorgan.core.models import Organisation, User
from qorgan.core.roles import ROLE_PERMISSIONS, Permission
from qorgan.core.smtp import MAX_ERROR as MAX_ERROR  # the recorded error's size, for tests
from qorgan.core.smtp import connect as _connect
from qorgan.core.smtp import describe
from qorgan.incidents import clocks
from qorgan.incidents.lifecycle import IncidentError
from qorgan.incidents.models import Incident
from qorgan.incidents.notification_models import Notification, NotificationPreference

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qorgan.core.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("assigned", "due_soon", "overdue", "reported", "answered")
CHANNELS = ("console", "email")
#: What a user gets before choosing: everything in the console; by e-mail what needs them.
DEFAULTS: Mapping[tuple[str, str], bool] = {
    **{(kind, "console"): True for kind in KINDS},
    **{(kind, "email"): kind in ("assigned", "overdue", "answered") for kind in KINDS},
}
#: E-mail states (see :class:`Notification`).
NOT_WANTED, PENDING, SENT, FAILED = "none", "pending", "sent", "failed"
#: Tries before an e-mail is given up, and the wait after each failed one.
MAX_ATTEMPTS = 10
RETRY_DELAYS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 30, 60, 120, 240, 480, 720, 1440))
#: How long a claimed e-mail is left to its sender before another notifier may try it (longer
#: than any SMTP conversation: ``smtp_timeout`` bounds each step).
LEASE = timedelta(minutes=10)
#: Older unsent e-mails are not sent (e-mail was off, or the server refused them for days);
#: the console still shows them.
MAX_AGE = timedelta(days=3)
#: E-mails one delivery pass sends.
BATCH = 100
#: Ids per ``IN (...)`` list.
CHUNK = 500


def reference(incident_id: int) -> str:
    """The incident's reference, as ``service.reference`` writes it."""
    return f"INC-{incident_id:06d}"


# --- Preferences ------------------------------------------------------------------------------


def preferences(*, session: Session, user_id: int) -> dict[tuple[str, str], bool]:
    """The user's choice per (kind, channel): their own where made, else the default."""
    chosen = dict(DEFAULTS)
    for row in session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id)
    ):
        if (row.kind, row.channel) in chosen:
            chosen[(row.kind, row.channel)] = row.enabled
    return chosen


def set_preferences(
    *, session: Session, user: User, enabled: Collection[tuple[str, str]]
) -> dict[tuple[str, str], bool]:
    """Keep the user's choice: the (kind, channel) pairs in ``enabled`` on, the rest off.
    Audited (a change to a user)."""
    unknown = set(enabled) - set(DEFAULTS)
    if unknown:
        kind, channel = sorted(unknown)[0]
        raise IncidentError(f"unknown notification {kind!r} by {channel!r}")
    audit.lock(session)
    session.execute(delete(NotificationPreference).where(NotificationPreference.user_id == user.id))
    chosen = {pair: pair in enabled for pair in DEFAULTS}
    session.add_all(
        NotificationPreference(user_id=user.id, kind=kind, channel=channel, enabled=on)
        for (kind, channel), on in chosen.items()
    )
    audit.record(
        "notification.preferences",
        session=session,
        actor=str(user.id),
        organisation_id=user.organisation_id,
        target_type="user",
        target_id=user.id,
        details={"enabled": sorted(f"{kind}/{channel}" for kind, channel in enabled)},
    )
    return chosen


def _wanted(session: Session, user_ids: Collection[int], kind: str) -> dict[int, tuple[bool, bool]]:
    """Per user: whether they want ``kind`` in the console, and by e-mail."""
    wanted = {u: (DEFAULTS[(kind, "console")], DEFAULTS[(kind, "email")]) for u in user_ids}
    ids = list(wanted)
    for start in range(0, len(ids), CHUNK):
        for row in session.scalars(
            select(NotificationPreference).where(
                NotificationPreference.user_id.in_(ids[start : start + CHUNK]),
                NotificationPreference.kind == kind,
            )
        ):
            console, email = wanted[row.user_id]
            if row.channel == "console":
                wanted[row.user_id] = (row.enabled, email)
            elif row.channel == "email":
                wanted[row.user_id] = (console, row.enabled)
    return wanted


# --- Who is told ------------------------------------------------------------------------------


def _members(session: Session, organisation_id: int, permission: Permission) -> list[int]:
    """The organisation's members whose role holds ``permission``."""
    roles = [role for role, held in ROLE_PERMISSIONS.items() if permission in held]
    return list(
        session.scalars(
            select(User.id)
            .where(User.organisation_id == organisation_id, User.role.in_(roles))
            .order_by(User.id)
        )
    )


def _responsible(session: Session, incident: Incident) -> list[int]:
    """Who answers for the incident: its assignee, or (unassigned) everyone of its
    organisation who works incidents."""
    if incident.assignee_id is not None:
        return [incident.assignee_id]
    return _members(session, incident.organisation_id, Permission.incidents_write)


def _create(
    session: Session,
    incident: Incident,
    kind: str,
    user_ids: Iterable[int],
    details: Mapping[str, Any],
    *,
    dedup_key: str | None = None,
    now: datetime | None = None,
) -> int:
    """Notify each user who wants ``kind`` on some channel; returns how many were notified.
    Only members of the incident's organisation, or of the coordinator it was reported to,
    are ever notified."""
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    allowed = {incident.organisation_id} | (
        {incident.reported_to_id} if incident.reported_to_id is not None else set()
    )
    members = set(
        session.scalars(select(User.id).where(User.id.in_(ids), User.organisation_id.in_(allowed)))
    )
    now = now or utcnow()
    created = 0
    for user_id, (console, email) in _wanted(session, sorted(members), kind).items():
        if not (console or email):
            continue
        session.add(
            Notification(
                user_id=user_id,
                incident_id=incident.id,
                kind=kind,
                details=dict(details),
                dedup_key=dedup_key,
                created_at=now,
                console=console,
                email_state=PENDING if email else NOT_WANTED,
                email_next_at=now if email else None,
            )
        )
        created += 1
    return created


def notify_for_event(
    session: Session,
    incident: Incident,
    actor_id: int | None,
    kind: str,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Notify whom an incident's timeline event concerns (called by ``service.event`` for
    every event; most kinds concern nobody). The actor is never told of their own act.

    - ``created`` with an assignee, ``assigned``: the new assignee;
    - ``reported``: the coordinator's members who coordinate reported incidents;
    - ``message`` from the coordinator: the incident's assignee, or (unassigned) its
      organisation's members who work incidents.
    """
    details = details or {}
    recipients: list[int] = []
    told: dict[str, Any] = {}
    if kind == "created" and incident.assignee_id is not None:
        kind, recipients = "assigned", [incident.assignee_id]
    elif kind == "assigned" and details.get("to") is not None:
        recipients = [int(details["to"])]
    elif kind == "reported":
        coordinator = details.get("coordinator", incident.reported_to_id)
        if coordinator is not None:
            recipients = _members(session, int(coordinator), Permission.incidents_coordinate)
            told = {"organisation": incident.organisation_id}
    elif kind == "message" and details.get("from") == "coordinator":
        kind, recipients = "answered", _responsible(session, incident)
        told = {"message": details.get("kind", "message")}
    else:
        return 0
    return _create(session, incident, kind, [u for u in recipients if u != actor_id], told)


#: How far back a passed deadline is still told as "overdue" (older ones are in the list).
LOOKBACK = timedelta(days=1)


def sweep_deadlines(*, session: Session, now: datetime | None = None) -> int:
    """Tell the people responsible for each open incident whose next deadline is within
    ``clocks.SOON`` ("due soon") or has passed ("overdue"): once per user and deadline, so
    repeating the sweep changes nothing. An incident first seen overdue is not told "due
    soon". Returns how many notifications it made."""
    now = now or utcnow()
    audit.lock(session)  # two sweeps (two console processes, cron) queue: no duplicate keys
    # Only deadlines that fell due within LOOKBACK or fall due soon (an index range of a
    # day's deadlines): a backlog of thousands of incidents long overdue is not news, and a
    # sweep over all of them held the write lock for seconds every minute (the console's
    # writers queued behind it) and sent a flood of notifications at once.
    incidents = session.scalars(
        select(Incident)
        .where(
            Incident.next_due_at > now - LOOKBACK,
            Incident.next_due_at <= now + clocks.SOON,
        )
        .order_by(Incident.next_due_at)
    ).all()
    due: list[tuple[Incident, str, str, str, datetime]] = []
    for incident in incidents:
        pending = clocks.open_deadlines(incident)
        if not pending:
            continue
        measure, at = min(pending.items(), key=lambda item: item[1])
        kind = "overdue" if now > at else "due_soon" if at - now <= clocks.SOON else None
        if kind is None:
            continue
        key = f"{kind}:{incident.id}:{measure}:{at.strftime('%Y%m%dT%H%M%S')}"
        due.append((incident, kind, measure, key, at))
    keys = [item[3] for item in due]
    told: set[tuple[int, str]] = set()
    for start in range(0, len(keys), CHUNK):
        told.update(
            (user_id, str(key))
            for user_id, key in session.execute(
                select(Notification.user_id, Notification.dedup_key).where(
                    Notification.dedup_key.in_(keys[start : start + CHUNK])
                )
            )
        )
    workers: dict[int, list[int]] = {}
    created = 0
    for incident, kind, measure, key, at in due:
        if incident.assignee_id is not None:
            people = [incident.assignee_id]
        else:
            if incident.organisation_id not in workers:
                workers[incident.organisation_id] = _responsible(session, incident)
            people = workers[incident.organisation_id]
        fresh = [u for u in people if (u, key) not in told]
        details = {"measure": measure, "due_at": at.isoformat()}
        created += _create(session, incident, kind, fresh, details, dedup_key=key, now=now)
    return created


# --- The console's view -----------------------------------------------------------------------


def unread_count(*, session: Session, user_id: int) -> int:
    """The user's unread console notifications (one indexed count)."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.console.is_(True),
                Notification.read_at.is_(None),
            )
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class Listed:
    """A notification as the console lists it, with its incident's reference and title."""

    notification: Notification
    reference: str
    title: str


def listing(
    *, session: Session, user_id: int, unread_only: bool = False, limit: int = 50, offset: int = 0
) -> list[Listed]:
    """The user's console notifications, newest first."""
    query = (
        select(Notification, Incident.title)
        .join(Incident, Incident.id == Notification.incident_id)
        .where(Notification.user_id == user_id, Notification.console.is_(True))
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    rows = session.execute(
        query.order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [Listed(n, reference(n.incident_id), title) for n, title in rows]


def mark_read(
    *,
    session: Session,
    user_id: int,
    ids: Collection[int] | None = None,
    now: datetime | None = None,
) -> int:
    """Mark the user's notifications ``ids`` (None: all of them) read; another user's ids are
    left alone. Returns how many changed."""
    condition = and_(Notification.user_id == user_id, Notification.read_at.is_(None))
    if ids is not None:
        if not ids:
            return 0
        condition = and_(condition, Notification.id.in_(sorted(set(ids))[:CHUNK]))
    result = session.execute(
        update(Notification)
        .where(condition)
        .values(read_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# --- E-mail -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mail:
    """What an e-mail tells, for a composer to word in the recipient's language."""

    kind: str
    language: str
    timezone: str
    reference: str
    #: None when the incident's TLP keeps its title out of e-mail (TLP:RED).
    title: str | None
    #: The incident's page, and the page where the recipient chooses notifications.
    link: str
    preferences_link: str
    #: The deadline (``due_soon``, ``overdue``): its measure and time.
    measure: str | None = None
    due_at: datetime | None = None
    #: The coordinator's message kind (``answered``): question, recommendation or message.
    message_kind: str | None = None
    #: The reporting organisation's name (``reported``).
    organisation: str | None = None


#: Words a :class:`Mail` as (subject, plain-text body); ``qorgan.web.mail.compose`` does it
#: with the console's catalogues.
Composer = Callable[[Mail], tuple[str, str]]


@dataclass(slots=True)
class Delivery:
    """What a delivery pass did."""

    sent: int = 0
    failed: int = 0
    #: Given up (too many tries, too old, or the recipient is gone).
    abandoned: int = 0
    disabled: bool = False
    errors: list[str] = field(default_factory=list)


def _retry_at(attempts: int, now: datetime) -> datetime:
    return now + RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]


def _claim(session: Session, now: datetime, limit: int) -> list[int]:
    """Take up to ``limit`` due e-mails for this sender: each is leased (``email_next_at``
    moved past ``LEASE``) in one statement, so a concurrent sender skips it; one whose sender
    died is due again when the lease ends."""
    queue_writer(session)
    due = (
        select(Notification.id)
        .where(Notification.email_state == PENDING, Notification.email_next_at <= now)
        .order_by(Notification.email_next_at, Notification.id)
        .limit(limit)
    )
    claimed = session.execute(
        update(Notification)
        .where(
            Notification.id.in_(due.scalar_subquery()),
            Notification.email_state == PENDING,
            Notification.email_next_at <= now,
        )
        .values(email_next_at=now + LEASE, email_attempts=Notification.email_attempts + 1)
        .returning(Notification.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    return sorted(claimed)


def _expire(session: Session, now: datetime) -> int:
    """Give up e-mails too old to send; the console still shows them."""
    queue_writer(session)
    result = session.execute(
        update(Notification)
        .where(Notification.email_state == PENDING, Notification.created_at < now - MAX_AGE)
        .values(email_state=FAILED, email_error=f"not sent within {MAX_AGE.days} days")
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _message(
    session: Session, notification_id: int, settings: Settings, compose: Composer
) -> EmailMessage | None:
    """The e-mail of a claimed notification, or None when there is nobody to send it to."""
    row = session.execute(
        select(Notification, User, Incident)
        .join(User, User.id == Notification.user_id)
        .join(Incident, Incident.id == Notification.incident_id)
        .where(Notification.id == notification_id)
    ).first()
    if row is None:
        return None
    notification, user, incident = row
    base = settings.public_url.rstrip("/")
    details = notification.details or {}
    organisation = None
    if notification.kind == "reported":
        organisation = session.scalar(
            select(Organisation.name).where(Organisation.id == incident.organisation_id)
        )
    due_at = details.get("due_at")
    mail = Mail(
        kind=notification.kind,
        language=user.language,
        timezone=settings.timezone,
        reference=reference(incident.id),
        title=None if incident.tlp == "red" else incident.title,
        link=f"{base}/incidents/{incident.id}",
        preferences_link=f"{base}/account#notifications",
        measure=details.get("measure"),
        due_at=datetime.fromisoformat(due_at) if isinstance(due_at, str) else None,
        message_kind=details.get("message"),
        organisation=organisation,
    )
    subject, body = compose(mail)
    message = EmailMessage()
    sender = settings.smtp_from or ""
    message["From"] = sender
    message["To"] = user.email
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid("notification", domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
    message.set_content(body)
    message["Content-Language"] = user.language  # after the content, which resets Content-*
    return message


def _record(
    factory: sessionmaker[Session], notification_id: int, error: str | None, now: datetime
) -> str:
    """Keep a send's outcome; returns the e-mail's state."""
    with unit_of_work(factory) as session:
        queue_writer(session)
        notification = session.get(Notification, notification_id)
        if notification is None:
            return FAILED
        if error is None:
            notification.email_state, notification.emailed_at = SENT, utcnow()
            notification.email_error = None
        else:
            notification.email_error = error
            if notification.email_attempts >= MAX_ATTEMPTS:
                notification.email_state = FAILED
            else:
                notification.email_next_at = _retry_at(notification.email_attempts, now)
        return notification.email_state


def deliver_email(
    factory: sessionmaker[Session],
    *,
    settings: Settings,
    compose: Composer,
    now: datetime | None = None,
    limit: int = BATCH,
    stop: threading.Event | None = None,
) -> Delivery:
    """Send the e-mails that are due (at most ``limit``), over one SMTP connection; each
    outcome is committed as soon as known. A failure keeps the e-mail pending with the error
    and a later retry time (failed for good after :data:`MAX_ATTEMPTS`); a connection that
    cannot be made fails the whole batch alike. Nothing here raises for SMTP's sake."""
    result = Delivery()
    if not settings.email_enabled:
        result.disabled = True
        return result
    now = now or utcnow()
    with unit_of_work(factory) as session:
        result.abandoned += _expire(session, now)
        claimed = _claim(session, now, limit)
    smtp: smtplib.SMTP | None = None
    try:
        for index, notification_id in enumerate(claimed):
            if stop is not None and stop.is_set():
                break  # the rest are due again when their lease ends
            try:
                with unit_of_work(factory) as session:
                    message = _message(session, notification_id, settings, compose)
            except Exception as exc:  # a bug in wording one e-mail must not stop the rest
                log.exception("notification %d: e-mail not composed", notification_id)
                message, error = None, f"not composed: {type(exc).__name__}"
            else:
                error = "no recipient"
            if message is None:
                result.abandoned += _record(factory, notification_id, error, now) == FAILED
                continue
            try:
                if smtp is None:
                    smtp = _connect(settings)
                smtp.send_message(message)
            except (OSError, smtplib.SMTPException) as exc:
                error = describe(exc)
                log.warning("notification %d: e-mail not sent: %s", notification_id, error)
                result.errors.append(error)
                result.failed += 1
                if _record(factory, notification_id, error, now) == FAILED:
                    result.abandoned += 1
                broken = isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
                    exc, smtplib.SMTPException
                )  # SMTPException is an OSError too: a refusal leaves the connection usable
                if smtp is None or broken:
                    # No connection (or it broke): the rest of the batch would fail alike.
                    for rest in claimed[index + 1 :]:
                        result.failed += 1
                        result.abandoned += _record(factory, rest, error, now) == FAILED
                    break
                continue
            _record(factory, notification_id, None, now)
            result.sent += 1
    finally:
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
    return result


# --- Running it -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pass:
    """What one notifier pass did: notifications the sweep made, and the e-mail delivery."""

    created: int
    delivery: Delivery


def run_once(
    factory: sessionmaker[Session],
    *,
    settings: Settings,
    compose: Composer,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> Pass:
    """One pass: the deadline sweep (its own unit of work), then the e-mail delivery."""
    with unit_of_work(factory) as session:
        created = sweep_deadlines(session=session, now=now)
    delivery = deliver_email(factory, settings=settings, compose=compose, now=now, stop=stop)
    return Pass(created, delivery)


class Notifier:
    """Runs :func:`run_once` every ``settings.notify_interval`` seconds in a background thread
    of the console (the first pass one interval after :meth:`start`, or at once on
    :meth:`wake`). A failed pass is logged and the next one runs as usual: the thread never
    dies of one."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        settings: Settings,
        compose: Composer,
        interval: float | None = None,
        also: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.compose = compose
        #: Other scheduled work the console runs after each pass (the privacy service's
        #: sweep): each on its own, a failure logged without stopping the others.
        self.also = tuple(also)
        self.interval = interval if interval is not None else settings.notify_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: Passes finished (tests wait on :attr:`passed` rather than sleeping).
        self.passes = 0
        self.passed = threading.Condition()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="qorgan-notifier", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Run a pass now rather than at the next interval."""
        self._wake.set()

    def wait_for_pass(self, after: int, timeout: float) -> bool:
        """Wait until more than ``after`` passes have finished (False on timeout)."""
        with self.passed:
            return self.passed.wait_for(lambda: self.passes > after, timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop after the e-mail being sent, if any (the rest stay pending)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                run_once(
                    self.factory, settings=self.settings, compose=self.compose, stop=self._stop
                )
            except Exception:  # the next pass retries; the thread must not die
                log.exception("notification pass failed")
            for job in self.also:
                try:
                    job()
                except Exception:
                    log.exception("scheduled job %s failed", getattr(job, "__name__", job))
            with self.passed:
                self.passes += 1
                self.passed.notify_all()
