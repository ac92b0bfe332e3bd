"""Subscriptions to external feeds: register one, find those due, and poll one into its
collection, resumably.

A feed belongs to an organisation and fills one of its collections (the objects' sender is the
organisation, so the TLP rule of the store governs who receives them from there). Reading is
done by :mod:`qorgan.intel.client` (TAXII 2.1) and :mod:`qorgan.intel.feeds` (MISP feeds,
lists); this module keeps their state in the database:

- **TAXII**: each page's objects and the cursor after it are committed in one transaction, so
  a poll killed at any point resumes after the last page it kept, losing and repeating
  nothing (the store also keeps one row per object version, so a replayed page is harmless).
- **MISP**: each batch of indicators is committed as it comes; the manifest timestamps seen are
  saved when the pull ends, so a poll killed midway reads the changed events again next time,
  and the versions already stored are not stored twice.
- **Lists** carry no state: every poll reads the whole list (an unchanged value is the same
  indicator id; see :func:`qorgan.intel.patterns.indicator_id`).

A failed poll keeps the state it had, records its error (the feed's own message, never a
credential: those come from the environment variable the feed names) and is due again after
its interval. Every poll is in the audit trail with its counts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core import audit
from qorgan.core.db import unit_of_work
from qorgan.core.errors import QorganError
from qorgan.core.tlp import Tlp
from qorgan.intel import store
from qorgan.intel.client import Cursor, TaxiiError, pull_taxii
from qorgan.intel.feeds import FeedError, FeedKind, FeedSettings, pull_list, pull_misp
from qorgan.intel.models import Collection, Feed
from qorgan.intel.taxii import parse_timestamp

__all__ = [
    "PollOutcome",
    "SubscriptionError",
    "add_feed",
    "due_feeds",
    "feed_ids",
    "feeds_of",
    "poll",
    "settings_of",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}\Z")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}\Z")
_TLPS = list(Tlp)


class SubscriptionError(QorganError):
    """A feed that cannot be registered or polled as asked."""


def add_feed(
    *,
    session: Session,
    actor: str,
    organisation_id: int,
    collection: Collection,
    name: str,
    kind: FeedKind | str,
    url: str,
    remote_collection: str | None = None,
    credential_env: str | None = None,
    confidence: int = 50,
    tlp: Tlp = Tlp.amber,
    lifetime_days: int = 30,
    poll_minutes: int = 60,
    allow_local_paths: bool = False,
) -> Feed:
    """Register a feed of ``organisation_id`` into its ``collection`` (which it must own).

    ``url`` is an ``http(s)`` URL; a local path only when ``allow_local_paths`` (the operator's
    command line), never from a form: a path would let a console user read the server's files
    into a collection.
    """
    if not allow_local_paths and not url.startswith(("https://", "http://")):
        raise SubscriptionError("a feed's address is an http:// or https:// URL")
    if collection.owner_id != organisation_id:
        raise SubscriptionError("a feed fills a collection of its own organisation")
    if not _NAME.match(name):
        raise SubscriptionError("a feed's name is 1 to 100 letters, digits, spaces, . _ -")
    if credential_env is not None and not _ENV.match(credential_env):
        raise SubscriptionError("credential_env names an environment variable (A-Z, 0-9, _)")
    if not 1 <= lifetime_days <= 3650 or not 1 <= poll_minutes <= 7 * 24 * 60:
        raise SubscriptionError("lifetime is 1 to 3650 days, the interval 1 minute to a week")
    # The reader's own checks (kind, URL, confidence, TAXII collection) judge the settings.
    try:
        FeedSettings(
            name=name,
            kind=FeedKind(kind),
            url=url,
            confidence=confidence,
            tlp=Tlp(tlp),
            collection=remote_collection,
        )
    except (ValueError, FeedError) as error:
        raise SubscriptionError(f"the feed's settings are not usable: {error}") from None
    if session.scalar(
        select(Feed.id).where(Feed.organisation_id == organisation_id, Feed.name == name)
    ):
        raise SubscriptionError("the organisation already has a feed of that name")
    feed = Feed(
        organisation_id=organisation_id,
        collection_id=collection.id,
        name=name,
        kind=FeedKind(kind).value,
        url=url,
        remote_collection=remote_collection,
        credential_env=credential_env,
        confidence=confidence,
        default_tlp=Tlp(tlp).rank,
        lifetime_days=lifetime_days,
        poll_minutes=poll_minutes,
        state={},
        last_objects=0,
        last_refused=0,
        objects_total=0,
    )
    session.add(feed)
    session.flush()
    audit.record(
        "intel.feed_create",
        session=session,
        actor=actor,
        organisation_id=organisation_id,
        target_type="intel_feed",
        target_id=str(feed.id),
        details={"name": name, "kind": feed.kind, "collection": collection.taxii_id},
    )
    return feed


def feeds_of(*, session: Session, organisation_id: int) -> list[Feed]:
    """The organisation's feeds by name."""
    return list(
        session.scalars(
            select(Feed).where(Feed.organisation_id == organisation_id).order_by(Feed.name)
        )
    )


def feed_ids(*, session: Session, organisation_id: int, names: list[str]) -> list[int]:
    """The ids of the organisation's feeds named ``names``; refused if one is not there."""
    ids = list(
        session.scalars(
            select(Feed.id).where(Feed.organisation_id == organisation_id, Feed.name.in_(names))
        )
    )
    if len(ids) != len(set(names)):
        raise SubscriptionError("no such feed in that organisation")
    return ids


def due_feeds(*, session: Session, now: datetime) -> list[int]:
    """Ids of the enabled feeds whose next poll is due at ``now``, most overdue first."""
    return list(
        session.scalars(
            select(Feed.id)
            .where(Feed.enabled, Feed.next_poll_at <= now)
            .order_by(Feed.next_poll_at, Feed.id)
        )
    )


def settings_of(feed: Feed, environ: Mapping[str, str] = os.environ) -> FeedSettings:
    """The reader's settings of ``feed``, its credential read from the variable it names.

    ``user:password`` in the variable means HTTP Basic; anything else is a Bearer token. A named
    variable that is not set is an error (a poll without the credential would only fail).
    """
    token = username = password = None
    if feed.credential_env:
        secret = environ.get(feed.credential_env)
        if not secret:
            raise SubscriptionError(f"the environment variable {feed.credential_env} is not set")
        if ":" in secret:
            username, password = secret.split(":", 1)
        else:
            token = secret
    return FeedSettings(
        name=feed.name,
        kind=FeedKind(feed.kind),
        url=feed.url,
        confidence=feed.confidence,
        tlp=_TLPS[feed.default_tlp],
        lifetime=timedelta(days=feed.lifetime_days),
        poll_interval=timedelta(minutes=feed.poll_minutes),
        collection=feed.remote_collection,
        token=token,
        username=username,
        password=password,
    )


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll did: objects stored (new or not), refused or skipped, and its error."""

    feed: str
    objects: int
    refused: int
    error: str | None


def _short(error: BaseException) -> str:
    return (str(error) or type(error).__name__)[:500]


def poll(
    factory: sessionmaker[Session],
    feed_id: int,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    environ: Mapping[str, str] = os.environ,
    max_pages: int | None = None,
) -> PollOutcome:
    """Poll one feed into its collection (see the module for what is committed when)."""
    started = now()
    with unit_of_work(factory) as session:
        feed = session.get(Feed, feed_id)
        if feed is None:
            raise SubscriptionError("no such feed")
        name, kind, state = feed.name, FeedKind(feed.kind), dict(feed.state or {})
        lifetime = timedelta(days=feed.lifetime_days)
        organisation_id, collection_id = feed.organisation_id, feed.collection_id
        try:
            settings: FeedSettings | None = settings_of(feed, environ)
            problem = None
        except (SubscriptionError, FeedError, ValueError) as error:
            settings, problem = None, _short(error)
    actor = f"feed:{name}"
    counts = {"objects": 0, "refused": 0}
    # A list re-asserts its values on every poll: an indicator is written again (a new version
    # with a later valid_until) only once half its lifetime has passed, not on every poll.
    refresh_by = started + lifetime / 2 if kind is FeedKind.csv else None

    def keep(objects: list[dict[str, Any]], new_state: dict[str, Any] | None) -> None:
        """Store what is new of ``objects`` and, in the same transaction, the state after."""
        with unit_of_work(factory) as session:
            collection = session.get(Collection, collection_id)
            if collection is None:
                raise SubscriptionError("the feed's collection is gone")
            objects = _new(session, collection, objects, refresh_by)
            if objects:
                status = store.add_objects(
                    objects,
                    session=session,
                    collection=collection,
                    sender_id=organisation_id,
                    actor=actor,
                )
                counts["objects"] += status.success_count
                counts["refused"] += status.failure_count
            if new_state is not None:
                feed = session.get(Feed, feed_id)
                assert feed is not None
                feed.state = new_state

    error = problem
    if settings is not None:
        try:
            error = _pull(kind, settings, state, keep, max_pages, counts, started)
        except (FeedError, TaxiiError, SubscriptionError, httpx.HTTPError) as failure:
            error = _short(failure)
    finished = now()
    with unit_of_work(factory) as session:
        feed = session.get(Feed, feed_id)
        assert feed is not None
        feed.last_poll_at = finished
        feed.next_poll_at = started + timedelta(minutes=feed.poll_minutes)
        feed.last_objects = counts["objects"]
        feed.last_refused = counts["refused"]
        feed.objects_total += counts["objects"]
        feed.last_error = error
        if error is None:
            feed.last_success_at = finished
        audit.record(
            "intel.feed_poll",
            session=session,
            actor=actor,
            organisation_id=organisation_id,
            target_type="intel_feed",
            target_id=str(feed_id),
            details={"objects": counts["objects"], "refused": counts["refused"], "ok": not error},
        )
    return PollOutcome(name, counts["objects"], counts["refused"], error)


def _new(
    session: Session,
    collection: Collection,
    objects: list[dict[str, Any]],
    refresh_by: datetime | None,
) -> list[Any]:
    """What of ``objects`` the collection does not hold yet.

    A version already stored is left out (so the counts say what is new). With ``refresh_by``
    (a list feed, whose objects carry the poll's time as their version), an indicator already
    stored is written again only when its stored ``valid_until`` falls before ``refresh_by``,
    as a new version that keeps the first ``created`` (STIX versions share it). Anything the
    store will refuse is passed on, so the refusal is counted with its reason.
    """
    ids = [o["id"] for o in objects if isinstance(o, dict) and isinstance(o.get("id"), str)]
    latest = store.latest_versions(session=session, collection=collection, stix_ids=ids)
    new: list[Any] = []
    for obj in objects:
        known = latest.get(obj.get("id")) if isinstance(obj, dict) else None  # type: ignore[arg-type]
        if known is None:
            new.append(obj)
            continue
        stamp = obj.get("modified") or obj.get("created")
        if stamp is None:
            continue  # an SCO without versions, already stored
        try:
            version = parse_timestamp(stamp)
        except QorganError:
            new.append(obj)
            continue
        if refresh_by is None:
            if version != known.version_at:
                new.append(obj)
        elif known.valid_until is not None and known.valid_until <= refresh_by:
            new.append({**obj, "created": known.created or obj.get("created")})
    return new


def _pull(
    kind: FeedKind,
    settings: FeedSettings,
    state: dict[str, Any],
    keep: Callable[[list[dict[str, Any]], dict[str, Any] | None], None],
    max_pages: int | None,
    counts: dict[str, int],
    now: datetime,
) -> str | None:
    """Run the reader of ``kind``; the error to record (problems inside a feed are refusals)."""
    if kind is FeedKind.taxii:
        pending: list[dict[str, Any]] = []

        def page_of(cursor: Cursor) -> None:
            keep(pending, {"cursor": cursor.to_json()})
            pending.clear()

        report = pull_taxii(
            settings,
            pending.extend,
            cursor=Cursor.from_json(state.get("cursor", {})),
            on_page=page_of,
            max_pages=max_pages,
        )
        counts["refused"] += sum(report.refused.values())
        return None
    if kind is FeedKind.misp:
        seen = state.get("seen", {})
        misp = pull_misp(settings, lambda batch: keep(batch, None), seen=seen, now=now)
        keep([], {"seen": misp.seen})
        counts["refused"] += misp.problem_count
        return None
    listed = pull_list(settings, lambda batch: keep(batch, None), now=now)
    counts["refused"] += listed.problem_count
    return None
