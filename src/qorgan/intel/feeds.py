"""Intel feeds that are not TAXII: MISP feeds (MISP's JSON) and plain lists (text or CSV).

A feed is read into STIX 2.1 indicators (:func:`qorgan.intel.patterns.indicator`) that are handed
to a caller-supplied *sink* in batches, so this module needs no store: the caller decides where
objects go (the intel store, a test's list). Each pull returns a report that counts what was
read, made, skipped (by MISP type or reason) and refused (with the line or event it came from),
so a feed's health page can say what went wrong without anything being dropped silently.

Every indicator carries the feed's trust as ``confidence``, a TLP (the event's TLP tag for MISP,
else the feed's default), ``valid_until`` = last seen + the feed's lifetime, and is created by the
feed's own identity (:func:`feed_identity`, a deterministic id per feed name), which goes to the
sink first so ``created_by_ref`` always resolves.

MISP feeds are a directory (or URL) holding ``manifest.json`` (event uuid -> ``timestamp``, ...)
and one ``<uuid>.json`` per event; a pull given the timestamps seen last time reads only events
whose timestamp changed, and returns the new map. An event that cannot be read keeps its old
timestamp, so it is retried on the next pull instead of being lost.
"""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx

from qorgan.core.errors import QorganError
from qorgan.core.tlp import Tlp
from qorgan.intel.ids import derived_id, stix_time
from qorgan.intel.markings import MarkingError, parse_tlp
from qorgan.intel.patterns import Kind, Observable, PatternError, indicator

__all__ = [
    "MISP_TYPES",
    "FeedError",
    "FeedKind",
    "FeedReport",
    "FeedSettings",
    "Problem",
    "Sink",
    "detect",
    "feed_identity",
    "pull_list",
    "pull_misp",
    "read_list",
]

#: Where pulled objects go: called with each batch of STIX objects (JSON dicts), in order.
Sink = Callable[[list[dict[str, Any]]], None]

_IDENTITY_CREATED = datetime(2026, 1, 1, tzinfo=UTC)
_BATCH = 1000
_MAX_PROBLEMS = 1000


class FeedError(QorganError):
    """A feed that cannot be read at all (settings, source, manifest); ``source`` names it."""


class FeedKind(StrEnum):
    """Where a feed's objects come from."""

    taxii = "taxii"
    misp = "misp"
    csv = "csv"


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """One subscription: where to pull from and what to assume about what comes back.

    ``url`` is an ``http(s)://`` URL or a local path (MISP: the feed's directory; CSV: the file;
    TAXII: the API root, with ``collection`` its id). ``confidence`` is the feed's trust, 0..100,
    set on indicators that do not carry their own. ``tlp`` marks objects that arrive unmarked.
    ``lifetime`` is how long an indicator stays valid after the feed last asserted it.
    ``column``: for a CSV list, the header name or 0-based index of the value column (None: one
    value per line). ``all_attributes``: for MISP, also turn attributes not flagged ``to_ids``
    into indicators. ``token`` (Bearer) or ``username``/``password`` (Basic) authenticate.
    """

    name: str
    kind: FeedKind
    url: str
    confidence: int = 50
    tlp: Tlp = Tlp.amber
    lifetime: timedelta = timedelta(days=30)
    poll_interval: timedelta = timedelta(hours=1)
    collection: str | None = None
    column: str | int | None = None
    all_attributes: bool = False
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        source = "feed settings"
        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 200:
            raise FeedError("a feed needs a name of 1 to 200 characters", source=source)
        try:
            object.__setattr__(self, "kind", FeedKind(self.kind))
            object.__setattr__(self, "tlp", Tlp(self.tlp))
        except ValueError:
            raise FeedError(
                "kind must be taxii, misp or csv; tlp a TLP 2.0 level", source=source
            ) from None
        if not isinstance(self.url, str) or not self.url.strip():
            raise FeedError("a feed needs a URL or path", source=source)
        if isinstance(self.confidence, bool) or not isinstance(self.confidence, int):
            raise FeedError("confidence must be an integer from 0 to 100", source=source)
        if not 0 <= self.confidence <= 100:
            raise FeedError("confidence must be an integer from 0 to 100", source=source)
        if self.lifetime <= timedelta(0) or self.poll_interval <= timedelta(0):
            raise FeedError("lifetime and poll interval must be positive", source=source)
        if self.kind is FeedKind.taxii and not self.collection:
            raise FeedError("a TAXII feed needs a collection id", source=source)
        if self.token and (self.username or self.password):
            raise FeedError("use a token or a username and password, not both", source=source)
        if self.max_bytes <= 0:
            raise FeedError("max_bytes must be positive", source=source)

    @property
    def identity_id(self) -> str:
        """The id of the feed's STIX identity (:func:`feed_identity`)."""
        return _identity_id(self.name)

    @property
    def auth(self) -> httpx.Auth | None:
        """The HTTP authentication the settings name, or None."""
        if self.token:
            return _Bearer(self.token)
        if self.username is not None:
            return httpx.BasicAuth(self.username, self.password or "")
        return None


@functools.lru_cache(maxsize=1024)
def _identity_id(name: str) -> str:
    return derived_id("identity", "feed", name)


class _Bearer(httpx.Auth):
    """``Authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


def feed_identity(settings: FeedSettings) -> dict[str, Any]:
    """The STIX identity that creates a feed's indicators (same id for the same feed name)."""
    when = stix_time(_IDENTITY_CREATED)
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": settings.identity_id,
        "created": when,
        "modified": when,
        "name": settings.name,
        "description": f"Intel feed ({settings.kind.value}) subscribed to by Qorgan.",
        "identity_class": "system",
    }


@dataclass(frozen=True, slots=True)
class Problem:
    """Something in a feed that was refused: where (line number or event uuid) and why."""

    where: str
    reason: str


@dataclass(slots=True)
class FeedReport:
    """What one pull did. ``seen`` (MISP) is the event -> timestamp map to pass next time."""

    feed: str
    read: int = 0
    indicators: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    events_read: int = 0
    seen: dict[str, int] = field(default_factory=dict)

    def problem(self, where: str, reason: str) -> None:
        """Record a refusal; the first :data:`_MAX_PROBLEMS` are kept, all are counted."""
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(where, reason))


class _Batches:
    """Collects objects and hands them to the sink :data:`_BATCH` at a time."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pending: list[dict[str, Any]] = []

    def add(self, obj: dict[str, Any]) -> None:
        self._pending.append(obj)
        if len(self._pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self._sink(batch)


# --- Fetching ------------------------------------------------------------------------------


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _fetch(location: str, settings: FeedSettings, client: httpx.Client | None, what: str) -> bytes:
    """The bytes at a URL or path, at most ``settings.max_bytes``; FeedError otherwise."""
    limit = settings.max_bytes
    if not _is_url(location):
        path = Path(location)
        try:
            if path.stat().st_size > limit:
                raise FeedError(f"{what} is larger than {limit} bytes", source=settings.name)
            return path.read_bytes()
        except OSError as err:
            raise FeedError(f"cannot read {what} ({err.strerror})", source=settings.name) from None
    own = client is None
    http = client or httpx.Client(timeout=60, follow_redirects=False)
    try:
        with http.stream("GET", location, auth=settings.auth or httpx.USE_CLIENT_DEFAULT) as reply:
            if reply.status_code != 200:
                # The standard phrase, not the server's: its text is not ours to repeat.
                phrase = httpx.codes.get_reason_phrase(reply.status_code)
                raise FeedError(f"{what}: HTTP {reply.status_code} {phrase}", source=settings.name)
            declared = reply.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                raise FeedError(f"{what} is larger than {limit} bytes", source=settings.name)
            chunks, size = [], 0
            for chunk in reply.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FeedError(f"{what} is larger than {limit} bytes", source=settings.name)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as err:
        raise FeedError(
            f"cannot fetch {what} ({type(err).__name__})", source=settings.name
        ) from None
    finally:
        if own:
            http.close()


def _join(base: str, name: str) -> str:
    """``name`` inside the feed's directory or under its URL."""
    if _is_url(base):
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


# --- MISP ----------------------------------------------------------------------------------

#: MISP attribute types we turn into observables -> how (see :func:`_misp_observables`).
MISP_TYPES: dict[str, str] = {
    "ip-src": "ip",
    "ip-dst": "ip",
    "ip-src|port": "ip|",
    "ip-dst|port": "ip|",
    "domain": "domain",
    "hostname": "domain",
    "hostname|port": "domain|",
    "domain|ip": "domain|ip",
    "url": "url",
    "email": "email",
    "email-src": "email",
    "email-dst": "email",
    "email-reply-to": "email",
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha256": "SHA-256",
    "sha512": "SHA-512",
    "sha3-256": "SHA3-256",
    "sha3-512": "SHA3-512",
    "ssdeep": "SSDEEP",
    "tlsh": "TLSH",
    "filename|md5": "|MD5",
    "filename|sha1": "|SHA-1",
    "filename|sha256": "|SHA-256",
    "filename|sha512": "|SHA-512",
}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _ip(text: str) -> Observable:
    """An address or range as the right kind of observable."""
    try:
        version = ipaddress.ip_network(text.strip(), strict=False).version
    except ValueError:
        raise PatternError("not an IP address or range") from None
    return Observable.of(Kind.ipv4 if version == 4 else Kind.ipv6, text)


def _misp_observables(kind: str, value: str) -> list[Observable]:
    """The observables a MISP attribute of type ``kind`` (from :data:`MISP_TYPES`) names."""
    how = MISP_TYPES[kind]
    if how == "ip":
        return [_ip(value)]
    if how == "ip|":
        return [_ip(value.rpartition("|")[0] or value)]
    if how == "domain":
        return [Observable.of(Kind.domain, value)]
    if how == "domain|":
        return [Observable.of(Kind.domain, value.rpartition("|")[0] or value)]
    if how == "domain|ip":
        domain, _, address = value.partition("|")
        return [Observable.of(Kind.domain, domain), _ip(address)]
    if how == "url":
        return [Observable.of(Kind.url, value)]
    if how == "email":
        return [Observable.of(Kind.email, value)]
    if how.startswith("|"):
        return [Observable.of(Kind.file_hash, value.rpartition("|")[2], how[1:])]
    return [Observable.of(Kind.file_hash, value, how)]


def _misp_tlp(tags: object) -> Tlp | None:
    """The strictest ``tlp:`` tag in a MISP tag list, or None."""
    levels = []
    if isinstance(tags, list):
        for tag in tags:
            name = tag.get("name") if isinstance(tag, Mapping) else None
            if isinstance(name, str) and name.lower().startswith("tlp:"):
                try:
                    levels.append(parse_tlp(name))
                except MarkingError:
                    continue  # tlp:ex:chr and the like: not a sharing level
    return max(levels) if levels else None


def _epoch(value: object) -> datetime | None:
    """A MISP time (epoch seconds as text or number, or ISO 8601 as in ``first_seen``) in UTC.

    None when absent or unreadable; an ISO time without a zone is read as UTC.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        value = int(text)
    if isinstance(value, int | float) and 0 <= value < 32_503_680_000:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def _misp_date(event: Mapping[str, Any]) -> datetime | None:
    date = event.get("date")
    if isinstance(date, str):
        try:
            return datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            return None
    return None


def _truthy(value: object) -> bool:
    """MISP writes ``to_ids`` as a boolean, or as "1"/"0" in older exports."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true"}
    return bool(value)


def _event_attributes(
    event: Mapping[str, Any], report: FeedReport, where: str
) -> Iterator[tuple[object, str]]:
    """Each attribute of an event, its own and its objects', with the object's name."""
    attributes = event.get("Attribute") or []
    objects = event.get("Object") or []
    if not isinstance(attributes, list) or not isinstance(objects, list):
        report.problem(where, "Attribute and Object must be lists")
        return
    for attribute in attributes:
        yield attribute, ""
    for obj in objects:
        inner = (obj.get("Attribute") or []) if isinstance(obj, Mapping) else None
        if not isinstance(inner, list):
            report.problem(where, "an object without a list of attributes")
            continue
        name = obj.get("name") if isinstance(obj.get("name"), str) else "object"
        for attribute in inner:
            yield attribute, name


def _read_event(
    data: bytes,
    event_uuid: str,
    settings: FeedSettings,
    out: _Batches,
    report: FeedReport,
    now: datetime,
) -> None:
    """Turn one MISP event file into indicators; bad attributes are counted, not fatal."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FeedError("event is not valid JSON", source=event_uuid) from None
    event = document.get("Event") if isinstance(document, Mapping) else None
    if not isinstance(event, Mapping):
        raise FeedError('event file has no "Event" object', source=event_uuid)
    event_tlp = _misp_tlp(event.get("Tag")) or settings.tlp
    event_day = _misp_date(event) or _epoch(event.get("timestamp")) or now
    info = event.get("info") if isinstance(event.get("info"), str) else ""
    for attribute, object_name in _event_attributes(event, report, event_uuid):
        if not isinstance(attribute, Mapping):
            report.problem(event_uuid, "an attribute is not a JSON object")
            continue
        report.read += 1
        kind = attribute.get("type")
        where = f"{event_uuid}/{attribute.get('uuid', '?')}"[:120]
        if _truthy(attribute.get("deleted")):
            report.skipped["deleted"] += 1
            continue
        if not isinstance(kind, str) or kind not in MISP_TYPES:
            report.skipped[f"type:{kind}"[:60] if isinstance(kind, str) else "type:?"] += 1
            continue
        if not settings.all_attributes and not _truthy(attribute.get("to_ids")):
            report.skipped["not to_ids"] += 1
            continue
        value = attribute.get("value")
        if not isinstance(value, str):
            report.problem(where, f"{kind} attribute without a text value")
            continue
        try:
            observables = _misp_observables(kind, value)
        except PatternError as err:
            report.problem(where, f"{kind}: {err.message}")
            continue
        last_seen = _epoch(attribute.get("last_seen")) or _epoch(attribute.get("timestamp"))
        first_seen = _epoch(attribute.get("first_seen")) or event_day
        modified = max(last_seen or first_seen, first_seen)
        tlp = max(event_tlp, _misp_tlp(attribute.get("Tag")) or event_tlp)
        labels = [f"misp:type={kind}"] + ([f"misp:object={object_name}"] if object_name else [])
        for observable in observables:
            out.add(
                indicator(
                    observable,
                    created_by_ref=settings.identity_id,
                    confidence=settings.confidence,
                    valid_from=first_seen,
                    created=first_seen,
                    modified=modified,
                    valid_until=modified + settings.lifetime,
                    tlp=tlp,
                    labels=labels,
                    description=f"From MISP event: {info}"[:1000] if info else None,
                    external_references=[
                        {"source_name": f"misp:{settings.name}"[:200], "external_id": event_uuid}
                    ],
                )
            )
            report.indicators += 1


def pull_misp(
    settings: FeedSettings,
    sink: Sink,
    *,
    seen: Mapping[str, int] | None = None,
    now: datetime | None = None,
    client: httpx.Client | None = None,
) -> FeedReport:
    """Read the MISP feed's events that changed since ``seen`` into indicators for ``sink``.

    ``seen`` is the event uuid -> manifest timestamp map of the last pull (``report.seen``);
    events whose timestamp is not newer are not fetched. Raises :class:`FeedError` only when the
    manifest cannot be read; a bad event is a problem in the report and stays at its old
    timestamp so the next pull retries it.
    """
    now = now or datetime.now(UTC)
    report = FeedReport(feed=settings.name, seen=dict(seen or {}))
    raw = _fetch(_join(settings.url, "manifest.json"), settings, client, "manifest.json")
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FeedError("manifest.json is not valid JSON", source=settings.name) from None
    if not isinstance(manifest, Mapping):
        raise FeedError("manifest.json is not a JSON object", source=settings.name)
    out = _Batches(sink)
    out.add(feed_identity(settings))
    for key, entry in manifest.items():
        if not _UUID.fullmatch(key):
            report.problem("manifest.json", "an event key is not a uuid")
            continue
        stamp_time = _epoch(entry.get("timestamp")) if isinstance(entry, Mapping) else None
        if stamp_time is None:
            report.problem(key, "manifest entry without a timestamp")
            continue
        stamp = int(stamp_time.timestamp())
        if stamp <= report.seen.get(key, -1):
            continue
        try:
            data = _fetch(_join(settings.url, f"{key}.json"), settings, client, f"event {key}")
            _read_event(data, key, settings, out, report, now)
        except FeedError as err:
            report.problem(key, err.message)
            continue
        report.events_read += 1
        report.seen[key] = stamp
    out.flush()
    return report


# --- Plain lists ---------------------------------------------------------------------------

_HASH_LENGTHS = {32: "MD5", 40: "SHA-1", 64: "SHA-256", 128: "SHA-512"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# A host name: labels of letters (any script), digits and hyphens, not starting or ending with a
# hyphen; the last label (TLD) letters only or an IDN "xn--" label.
_DOMAIN = re.compile(
    r"""
    (?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+   # labels, each followed by a dot
    (?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59}) # the top-level label
    """,
    re.VERBOSE,
)
_REFANG = [("[.]", "."), ("(.)", "."), ("{.}", "."), ("[:]", ":"), ("[@]", "@"), ("[at]", "@")]


def _refang(text: str) -> str:
    """Undo the usual defanging (``example[.]com``, ``hxxp://``) feeds write."""
    for old, new in _REFANG:
        text = text.replace(old, new)
    if text[:4].lower() == "hxxp":
        text = "http" + text[4:]
    return text


def detect(text: str) -> Observable:
    """The observable a list entry names: address or range, hash, URL, e-mail address, domain.

    Raises :class:`PatternError` with a short reason when the entry is none of these.
    """
    value = _refang(text.strip())
    if not value:
        raise PatternError("empty value")
    if len(value) > 8192:
        raise PatternError("value longer than 8192 characters")
    try:
        return _ip(value)
    except PatternError:
        pass
    if _HEX.fullmatch(value) and len(value) in _HASH_LENGTHS:
        return Observable.of(Kind.file_hash, value, _HASH_LENGTHS[len(value)])
    if _SCHEME.fullmatch(value):
        return Observable.of(Kind.url, value)
    if _EMAIL.fullmatch(value):
        if _DOMAIN.fullmatch(value.rpartition("@")[2]):
            return Observable.of(Kind.email, value)
        raise PatternError("e-mail address with an invalid domain")
    if _DOMAIN.fullmatch(value.rstrip(".")) and len(value) <= 253:
        return Observable.of(Kind.domain, value)
    if _HEX.fullmatch(value):
        raise PatternError(f"{len(value)} hex digits is no known hash length")
    raise PatternError("not an address, range, domain, URL, e-mail address or hash")


def _values(text: str, column: str | int | None, report: FeedReport) -> Iterator[tuple[int, str]]:
    """``(line number, value)`` of each entry: blank lines and ``#`` comments skipped."""
    if column is None:
        for number, line in enumerate(text.splitlines(), start=1):
            entry = re.split(r"\s#", line, maxsplit=1)[0].strip()
            if entry and not entry.startswith("#"):
                yield number, entry
        return
    reader = csv.reader(io.StringIO(text))
    index = column if isinstance(column, int) else None
    number = 0
    for row in reader:
        number = reader.line_num
        if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
            continue
        if index is None:  # the first row is the header naming the column
            names = [cell.strip().lower() for cell in row]
            if str(column).lower() not in names:
                raise FeedError("the CSV header has no such column", source=f"line {number}")
            index = names.index(str(column).lower())
            continue
        if index >= len(row):
            report.problem(f"line {number}", f"fewer than {index + 1} columns")
            continue
        if row[index].strip():
            yield number, row[index].strip()
        else:
            report.problem(f"line {number}", "empty value")


def read_list(
    text: str,
    settings: FeedSettings,
    sink: Sink,
    *,
    now: datetime | None = None,
) -> FeedReport:
    """Turn a list (one value a line, or ``settings.column`` of a CSV) into indicators.

    Each value's kind is detected (:func:`detect`); a line that names nothing is recorded with
    its number and reason and the rest of the list goes on. A CSV read by column *index* has no
    header: a header line there is refused like any other line (lists such as abuse.ch's write
    their header as a ``#`` comment); a column *name* is looked up in the first row. A value
    repeated in the list makes one indicator. The list has no dates, so each indicator is valid
    from ``now`` for the feed's lifetime (``created`` is ``now`` too: the store keeps the first
    ``created`` of an id).
    """
    now = now or datetime.now(UTC)
    report = FeedReport(feed=settings.name)
    out = _Batches(sink)
    out.add(feed_identity(settings))
    seen: set[Observable] = set()
    for number, value in _values(text, settings.column, report):
        report.read += 1
        try:
            observable = detect(value)
        except PatternError as err:
            report.problem(f"line {number}", err.message)
            continue
        if observable in seen:
            report.duplicates += 1
            continue
        seen.add(observable)
        out.add(
            indicator(
                observable,
                created_by_ref=settings.identity_id,
                confidence=settings.confidence,
                valid_from=now,
                valid_until=now + settings.lifetime,
                tlp=settings.tlp,
                labels=[f"feed:{settings.name}"[:200]],
            )
        )
        report.indicators += 1
    out.flush()
    return report


def pull_list(
    settings: FeedSettings,
    sink: Sink,
    *,
    now: datetime | None = None,
    client: httpx.Client | None = None,
) -> FeedReport:
    """Fetch a list feed (URL or path) and read it with :func:`read_list`.

    The bytes are read as UTF-8 (a byte order mark is dropped); undecodable bytes are replaced
    and the lines holding them are refused as values, rather than the whole list being lost.
    """
    data = _fetch(settings.url, settings, client, "list")
    text = data.decode("utf-8-sig", errors="replace")
    return read_list(text, settings, sink, now=now)
