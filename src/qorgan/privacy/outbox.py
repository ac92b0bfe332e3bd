"""Sending the queued leak notices (:class:`~qorgan.privacy.leak_models.LeakNotice`) through
their channels, with retries, so that each subject is told once and nobody is forgotten.

A send cannot be in a database transaction, so a notice goes through three steps, each
committed on its own:

1. **claim**: due notices (``pending`` and due, or ``sending`` with an expired lease) become
   ``sending`` with ``lease_until = now + LEASE`` (``SELECT ... FOR UPDATE SKIP LOCKED``, then
   an ``UPDATE`` that checks each is still due): two senders never claim one notice;
2. **send** through the notice's channel;
3. **mark** it ``sent`` (before the next is sent; an idempotent channel's notices a batch at
   a time), or, after a failure, ``pending`` again at the next retry time
   (:data:`RETRY_DELAYS`), ``failed`` after :data:`MAX_ATTEMPTS` or a permanent refusal.

A process killed after step 1 leaves the notice ``sending``: it is claimed again when the
lease ends, so nothing is forgotten. Killed between 2 and 3, the notice was handed over but not
recorded, and it is sent again after the lease: delivery is **at least once**. The file channel
turns that into exactly once (it skips a notice id it already holds); the SMS gateway gets a
stable ``client_ref`` and e-mail a stable ``Message-ID`` to drop duplicates by, but an SMTP
server cannot be asked whether it took a message, so a crash in that window can mean a second
e-mail. The window is one SMTP conversation per crash; it is not zero, and we do not claim it is.

Recorded errors (``last_error``) and log lines carry no address, name, number or text:
:func:`scrub` removes anything that looks like an address or a phone number or IIN.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import and_, or_, select, update

from qorgan.core.db import queue_writer, unit_of_work, utcnow
from qorgan.core.smtp import ADDRESS
from qorgan.privacy.channels.base import Channel, ChannelError, Message
from qorgan.privacy.leak_models import LeakNotice, LeakReport, LeakSubject, NoticeStatus
from qorgan.privacy.notices import NoticeFacts, email_text, sms_text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from qorgan.privacy.protection import Protection

log = logging.getLogger(__name__)

#: How long a claimed notice is left to its sender before another run may take it: longer
#: than any send (SMTP steps time out after ``smtp_timeout``, the gateway after ``sms_timeout``).
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 8
RETRY_DELAYS = tuple(timedelta(minutes=m) for m in (1, 5, 15, 60, 180, 360, 720, 1440))
BATCH = 100
MAX_ERROR = 500
#: Runs of digits (phone numbers, IINs), with the separators people write in them.
_NUMBER = re.compile(r"\+?\d[\d\s\-()]{5,}\d")


def scrub(text: str) -> str:
    """``text`` without anything that looks like an e-mail address or a long number."""
    return _NUMBER.sub("<number>", ADDRESS.sub("<address>", text))[:MAX_ERROR]


@dataclass(slots=True)
class Delivery:
    """What a run did."""

    sent: int = 0
    #: Failed this time; tried again later.
    retried: int = 0
    #: Failed for good (too many attempts, or refused for good).
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _due(now: datetime) -> object:
    return or_(
        and_(LeakNotice.status == NoticeStatus.pending, LeakNotice.next_attempt_at <= now),
        and_(LeakNotice.status == NoticeStatus.sending, LeakNotice.lease_until <= now),
    )


def claim(
    session: Session, *, now: datetime, channels: list[str], limit: int, lease: timedelta = LEASE
) -> list[int]:
    """Lease up to ``limit`` due notices of ``channels`` to this run; their ids.

    Two statements, not ``UPDATE ... WHERE id IN (SELECT ... LIMIT ... SKIP LOCKED)``: as a
    subquery, PostgreSQL may run the SELECT more than once and claim more than ``limit``. The
    SELECT locks its rows on PostgreSQL (others skip them); the UPDATE checks again that each
    is still due, so on SQLite, where a second process may have read the same ids, only one
    claims each."""
    queue_writer(session)
    picked = list(
        session.scalars(
            select(LeakNotice.id)
            .where(_due(now), LeakNotice.channel.in_(channels))
            .order_by(LeakNotice.next_attempt_at, LeakNotice.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    if not picked:
        return []
    claimed = session.execute(
        update(LeakNotice)
        .where(LeakNotice.id.in_(picked), _due(now))
        .values(
            status=NoticeStatus.sending,
            lease_until=now + lease,
            attempts=LeakNotice.attempts + 1,
        )
        .returning(LeakNotice.id)
        .execution_options(synchronize_session=False)
    ).scalars()
    return sorted(claimed)


def messages(session: Session, protection: Protection, ids: list[int]) -> list[Message]:
    """The claimed notices, worded, with their addresses decrypted (in memory only)."""
    rows = session.execute(
        select(LeakNotice.id, LeakNotice.channel, LeakSubject, LeakReport)
        .join(
            LeakSubject,
            and_(
                LeakSubject.leak_id == LeakNotice.leak_id,
                LeakSubject.subject_id == LeakNotice.subject_id,
            ),
        )
        .join(LeakReport, LeakReport.id == LeakNotice.leak_id)
        .where(LeakNotice.id.in_(ids))
        .order_by(LeakNotice.id)
    )
    contacts: dict[int, str] = {}
    out = []
    for notice_id, channel, subject, leak in rows:
        if leak.id not in contacts:
            contacts[leak.id] = protection.decrypt(leak.contacts)
        facts = NoticeFacts(
            leak_id=leak.id,
            holder_name=leak.holder_name,
            holder_bin=leak.holder_bin,
            categories=list(leak.categories),
            description=leak.description,
            occurred_at=leak.occurred_at,
            detected_at=leak.detected_at,
            measures=leak.measures,
            responsible_person=leak.responsible_person,
            contacts=contacts[leak.id],
            subject_name=protection.decrypt(subject.name),
        )
        title, body = email_text(facts)
        out.append(
            Message(
                notice_id=notice_id,
                leak_id=leak.id,
                channel=str(channel),
                address=protection.decrypt(subject.address),
                subject=title,
                body=body,
                short=sms_text(facts),
            )
        )
    return out


def _mark_sent(factory: sessionmaker[Session], ids: list[int]) -> None:
    """Record notices handed over, in one transaction."""
    if not ids:
        return
    with unit_of_work(factory) as session:
        queue_writer(session)
        session.execute(
            update(LeakNotice)
            .where(LeakNotice.id.in_(ids))
            .values(status=NoticeStatus.sent, sent_at=utcnow(), lease_until=None, last_error=None)
            .execution_options(synchronize_session=False)
        )


def _mark_failed(
    factory: sessionmaker[Session], notice_id: int, error: ChannelError, now: datetime
) -> NoticeStatus:
    """Record a failed attempt: pending again after the next delay, or failed for good;
    returns the notice's new status."""
    with unit_of_work(factory) as session:
        queue_writer(session)
        notice = session.get(LeakNotice, notice_id)
        if notice is None:  # its report was deleted meanwhile
            return NoticeStatus.failed
        notice.last_error = scrub(error.message)
        notice.lease_until = None
        if error.permanent or notice.attempts >= MAX_ATTEMPTS:
            notice.status = NoticeStatus.failed
        else:
            notice.status = NoticeStatus.pending
            delay = RETRY_DELAYS[min(notice.attempts, len(RETRY_DELAYS)) - 1]
            notice.next_attempt_at = now + delay
        return notice.status


def _release(factory: sessionmaker[Session], ids: list[int]) -> None:
    """Give back claimed notices not sent (a stop asked for): due again at once."""
    if not ids:
        return
    with unit_of_work(factory) as session:
        queue_writer(session)
        session.execute(
            update(LeakNotice)
            .where(LeakNotice.id.in_(ids), LeakNotice.status == NoticeStatus.sending)
            .values(
                status=NoticeStatus.pending,
                lease_until=None,
                attempts=LeakNotice.attempts - 1,
            )
            .execution_options(synchronize_session=False)
        )


def deliver(
    factory: sessionmaker[Session],
    channels: Mapping[str, Channel],
    *,
    protection: Protection,
    batch: int = BATCH,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    limit: int | None = None,
    lease: timedelta = LEASE,
) -> Delivery:
    """Send every due notice whose channel is in ``channels`` (``{"email": ..., "sms": ...}``),
    ``batch`` claimed at a time, until none is due (or ``limit`` were tried, or ``stop`` is
    set). ``now`` fixes the clock (tests); otherwise each claim reads it. The channels are
    closed at the end.

    A notice sent through a channel that is not idempotent is recorded before the next one is
    sent, so a crash leaves at most one to send twice. An idempotent channel's (the file's)
    are recorded together at the end of their batch: one commit instead of a hundred, and a
    crash before it only makes the channel skip what it already holds."""
    result = Delivery()
    tried = 0
    try:
        while not (stop is not None and stop.is_set()):
            moment = now or utcnow()
            size = batch if limit is None else min(batch, limit - tried)
            if size <= 0:
                break
            with unit_of_work(factory) as session:
                ids = claim(session, now=moment, channels=list(channels), limit=size, lease=lease)
                batch_messages = messages(session, protection, ids) if ids else []
            if not ids:
                break
            tried += len(ids)
            _send_batch(factory, channels, batch_messages, moment, result, stop)
    finally:
        for channel in {id(c): c for c in channels.values()}.values():
            channel.close()
    return result


def _send_batch(
    factory: sessionmaker[Session],
    channels: Mapping[str, Channel],
    batch: list[Message],
    now: datetime,
    result: Delivery,
    stop: threading.Event | None,
) -> None:
    grouped: list[int] = []  # sent through idempotent channels, not yet recorded
    try:
        for index, message in enumerate(batch):
            if stop is not None and stop.is_set():
                _release(factory, [m.notice_id for m in batch[index:]])
                break
            channel = channels[message.channel]
            if not _send(factory, channel, message, now, result):
                continue
            if channel.idempotent:
                grouped.append(message.notice_id)
            else:
                _mark_sent(factory, [message.notice_id])
    except Exception:
        _mark_sent(factory, grouped)  # a bug in one notice: what went out is still recorded
        raise
    _mark_sent(factory, grouped)


def _send(
    factory: sessionmaker[Session],
    channel: Channel,
    message: Message,
    now: datetime,
    result: Delivery,
) -> bool:
    """Hand ``message`` to ``channel``; a failure is recorded here. Whether it went out."""
    try:
        channel.send(message)
    except ChannelError as exc:
        error = scrub(exc.message)
        log.warning("leak notice %d not sent: %s", message.notice_id, error)
        result.errors.append(error)
        status = _mark_failed(factory, message.notice_id, exc, now)
        if status is NoticeStatus.failed:
            result.failed += 1
        else:
            result.retried += 1
        return False
    result.sent += 1
    return True
