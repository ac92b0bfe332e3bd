"""Indicators of compromise matched in a hunt: addresses, domains, URLs, file hashes and e-mail
addresses, from threat-intelligence feeds, against the normalised events of each batch.

Why hash tables and not an automaton: every kind here is a whole value of a field (an address,
a host name, a hash), so matching is "is this field's value (or a suffix of its labels) in the
set", which a hash table answers in O(1) per distinct value whatever the number of indicators;
an automaton (Aho-Corasick, Hyperscan) finds values *inside* text, which would only be needed
for free text (command lines, syslog messages) and would cost a long compile and much memory
for millions of patterns. So an :class:`IndicatorSet` is one dict per kind, built once, and a
batch costs one pass over the events for the fields in :data:`FIELDS` (the engine's
dictionary encoding, :func:`~qorgan.detection.engine.encode`) and a few look-ups per distinct
value of those fields:

- addresses, hashes, e-mail addresses, URLs: one look-up of the value's canonical form;
- domains: one per suffix of the event's name (``a.b.evil.com`` tries ``a.b.evil.com``,
  ``b.evil.com``, ``evil.com``), so an indicator also matches its subdomains (and never a
  sibling such as ``notevil.com``);
- a URL's host, and an e-mail address's domain, also meet domain (or address) indicators;
- Windows ``Hashes`` values (``SHA1=..,MD5=..,SHA256=..,IMPHASH=..``) are split; an import
  hash is not a file hash and is never looked up.

Canonical forms (of indicators and of event values alike): hashes, domains and e-mail
addresses lower-case (an internationalised domain as its IDNA ``xn--`` form, a trailing dot
dropped); IPv6 compressed as RFC 5952 writes it (``inet_ntop``); IPv4 dotted decimal, with
leading zeros refused (``010.0.0.1`` is octal to some parsers and decimal to others); a URL as
``host[:port]/path[?query]``: host lower-case, the scheme's default port dropped, an empty path
``/``, the fragment dropped, and the scheme not kept, so that a web server's log (which holds
the Host header and the request target, not the scheme) meets URL indicators too.

Expiry: an indicator matches an event that happened before its ``valid_until``; an event
without a time is judged at the set's clock (``now``, when it was built). So a hunt over last
year's logs still finds what was bad then, and in live monitoring (events of now) an expired
indicator stops matching.

Levels: the confidence of the indicator on the STIX 2.1 "Low/Med/High" scale (STIX 2.1,
appendix A): 0 ``informational``, 1-29 ``low``, 30-69 ``medium``, 70-100 ``high``.
"""

from __future__ import annotations

import gc
import math
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from socket import AF_INET6, inet_ntop, inet_pton
from typing import TYPE_CHECKING, Any

import numpy as np

from qorgan.detection.correlation import epoch
from qorgan.detection.engine import Column, encode
from qorgan.detection.errors import DetectionError
from qorgan.detection.plan import RuleMeta

if TYPE_CHECKING:
    from qorgan.detection.engine import Engine
    from qorgan.telemetry.batch import EventBatch

KINDS = ("ipv4-addr", "ipv6-addr", "domain-name", "url", "file-hash", "email-addr")

#: Where each role of value is looked for: the event fields (as the formats name them) that can
#: hold it. A field outside this map is never looked at, so an indicator never matches a field
#: that cannot hold its kind (an address in a user name, a hash in a GUID).
FIELDS: dict[str, tuple[str, ...]] = {
    # an address (IPv4 or IPv6)
    "ip": (
        "id.orig_h",  # Zeek: connection originator
        "id.resp_h",  # Zeek: responder
        "SourceIp",  # Sysmon 3 (network connection)
        "DestinationIp",
        "IpAddress",  # Windows security 4624/4625/4648...
        "SourceAddress",  # Windows filtering platform 5156/5157
        "DestAddress",
        "c-ip",  # web server access logs: client
        "s-ip",  # and server
        "src_ip",  # sshd (syslog)
        "dst_ip",
        "SRC",  # netfilter (syslog)
        "DST",
        "ClientIP",
    ),
    # a host name (or an address in its place): domain indicators, and address indicators
    "domain": (
        "query",  # Zeek dns
        "answers",  # Zeek dns: names and addresses
        "QueryName",  # Sysmon 22 (DNS query)
        "DestinationHostname",  # Sysmon 3
        "SourceHostname",
        "host",  # Zeek http: Host header
        "server_name",  # Zeek ssl: SNI
        "cs-host",  # web server: Host header
        "r-dns",  # proxy: the requested host
        "rhost",  # PAM remote host
        "client",  # Apache error log: [client ...]
    ),
    # a whole URL (scheme://host/path): URL indicators, and its host meets domains and addresses
    "url": ("c-uri", "cs-referer", "referrer", "url", "Url", "request_url"),
    # file hashes: one hex value, or a Windows "ALG=hex,ALG=hex" list
    "hash": ("Hashes", "Hash", "md5", "sha1", "sha256", "MD5", "SHA1", "SHA256"),
    # e-mail addresses, bare or as "Name <a@b>"; the address's domain meets domain indicators
    "email": ("mailfrom", "rcptto", "from", "to", "cc", "reply_to", "SenderAddress",
              "RecipientAddress"),
}  # fmt: skip

#: A request's host and target in two fields (web server logs, Zeek http): together a URL.
URL_PAIRS: tuple[tuple[str, str], ...] = (("cs-host", "cs-uri"), ("host", "uri"))

#: Which roles of :data:`FIELDS` each kind of indicator needs read.
ROLES_OF_KIND: dict[str, tuple[str, ...]] = {
    "ipv4-addr": ("ip", "domain", "url", "email"),
    "ipv6-addr": ("ip", "domain", "url", "email"),
    "domain-name": ("domain", "url", "email"),
    "url": ("url",),
    "file-hash": ("hash",),
    "email-addr": ("email",),
}

LEVEL_BOUNDS = ((70, "high"), (30, "medium"), (1, "low"), (0, "informational"))
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
HASH_LENGTHS = {32: "md5", 40: "sha1", 64: "sha256"}
#: Field values remembered per role between batches (then forgotten all at once).
MEMO_SIZE = 1 << 16
#: Longest indicator value kept (a URL); longer ones are refused.
MAX_VALUE = 2048

_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"  # a DNS label (underscores: _dmarc, SRV names)
#: A host name of two labels or more, the last not all digits (that would be an address).
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+(?![0-9]+$){_LABEL}")
_EMAIL_LOCAL = re.compile(r"[^\s@<>()\[\],;:\"]{1,64}")
_BRACKETED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")


class IndicatorError(DetectionError):
    """An indicator that cannot be matched (unknown kind, malformed value); says why."""


def level_of(confidence: int) -> str:
    """The alert level of an indicator's confidence (see the module's docstring)."""
    for floor, level in LEVEL_BOUNDS:
        if confidence >= floor:
            return level
    return "informational"


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator as intel hands it over: plain data, validated by :class:`IndicatorSet`."""

    kind: str
    value: str
    ref: str  # the STIX indicator id
    source: str  # the feed or collection it came from
    confidence: int  # 0..100
    valid_until: datetime | None = None


# -- canonical forms -------------------------------------------------------------------------


def _clean(text: str, what: str) -> str:
    if "\x00" in text:
        raise IndicatorError(f"{what} holds a NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise IndicatorError(
                f"{what} holds a lone surrogate (not valid Unicode text)"
            ) from None
    return text


def _ipv6(text: str) -> str:
    """An IPv6 address as RFC 5952 writes it (lower case, the longest run of zero fields as
    ``::``), by the C library: ten times faster than :mod:`ipaddress`, which matters for a
    million indicators. OSError or ValueError when it is not one."""
    return inet_ntop(AF_INET6, inet_pton(AF_INET6, text))


def canonical_ip(text: str) -> str:
    """An address's canonical text (IPv4 dotted decimal, IPv6 compressed); IndicatorError when
    it is not one address (a range, leading zeros, a zone)."""
    if _IPV4.fullmatch(text):
        return text
    if ":" in text:
        try:
            return _ipv6(text)
        except (OSError, ValueError):  # inet_pton refuses zones, ranges, bad hextets
            pass
    raise IndicatorError("not an IPv4 or IPv6 address (no ranges, no leading zeros)")


def canonical_domain(text: str) -> str:
    """A host name lower-case (IDNA ``xn--`` form), no trailing dot; at least two labels."""
    name = text.strip().rstrip(".").lower()
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise IndicatorError("not a valid internationalised domain name") from None
    if len(name) > 253:
        raise IndicatorError("a domain name is at most 253 characters")
    if _DOMAIN.fullmatch(name):
        return name
    if "." not in name:
        raise IndicatorError("a domain needs at least two labels (a bare TLD matches a zone)")
    if name.rpartition(".")[2].isdigit():
        raise IndicatorError("an address, not a domain name (use ipv4-addr)")
    raise IndicatorError("not a domain name (labels of letters, digits, '-', '_')")


def canonical_hash(text: str) -> str:
    """A file hash lower-case hex, MD5, SHA-1 or SHA-256 by its length."""
    value = text.strip()
    if len(value) not in HASH_LENGTHS or not _HEX.fullmatch(value):
        raise IndicatorError("not a file hash (32, 40 or 64 hex digits: MD5, SHA-1, SHA-256)")
    return value.lower()


def canonical_email(text: str) -> str:
    """An e-mail address lower-case, its domain canonical."""
    value = text.strip()
    local, at, domain = value.rpartition("@")
    if not at or not _EMAIL_LOCAL.fullmatch(local):
        raise IndicatorError("not an e-mail address (local@domain)")
    return f"{local.lower()}@{canonical_domain(domain)}"


def _host(netloc: str) -> tuple[str, int | None, str]:
    """(host, port, userinfo) of a URL's authority; IndicatorError when malformed."""
    userinfo, _, hostport = netloc.rpartition("@")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise IndicatorError("a URL's IPv6 host lacks its ']'")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise IndicatorError("not a URL host")
        port_text = rest[1:]
    else:
        host, _, port_text = hostport.partition(":")
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise IndicatorError("a URL's port is a number from 1 to 65535")
        port = int(port_text)
    if not host:
        raise IndicatorError("a URL needs a host")
    try:
        host = canonical_ip(host)
    except IndicatorError:
        host = canonical_domain(host)
    return host, port, userinfo


def split_url(text: str) -> tuple[str, str]:
    """(key, host) of a URL: the key is its canonical form without the scheme (see the
    module's docstring), the host its canonical host name or address."""
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    scheme = scheme.lower()
    if not sep or not _SCHEME.fullmatch(scheme):
        raise IndicatorError("not a URL (scheme://host/path)")
    rest = rest.partition("#")[0]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, target = rest[:cut], rest[cut:]
    host, port, userinfo = _host(netloc)
    if not target.startswith("/"):
        target = "/" + target
    shown = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        shown = f"{shown}:{port}"
    if userinfo:
        shown = f"{userinfo}@{shown}"
    return shown + target, host


def canonical(kind: str, value: Any) -> str:
    """The canonical value of an indicator of ``kind``; IndicatorError saying why it cannot be
    matched."""
    if kind not in KINDS:
        raise IndicatorError(f"unknown kind (known: {', '.join(KINDS)})")
    if not isinstance(value, str):
        raise IndicatorError("the value is not text")
    value = _clean(value, "the value").strip()
    if not value:
        raise IndicatorError("the value is empty")
    if len(value) > MAX_VALUE:
        raise IndicatorError(f"the value is longer than {MAX_VALUE} characters")
    if kind == "ipv4-addr":
        if not _IPV4.fullmatch(value):
            raise IndicatorError("not an IPv4 address (dotted decimal, no leading zeros)")
        return value
    if kind == "ipv6-addr":
        if ":" not in value:
            raise IndicatorError("not an IPv6 address")
        return canonical_ip(value)
    if kind == "domain-name":
        return canonical_domain(value)
    if kind == "file-hash":
        return canonical_hash(value)
    if kind == "email-addr":
        return canonical_email(value)
    return split_url(value)[0]


# -- the set ---------------------------------------------------------------------------------

_KIND_CODE = {kind: code for code, kind in enumerate(KINDS)}
_STIX_ID = re.compile(r"indicator--[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_NO_ID = bytes(16)
#: Which table each kind is kept in (the two address families share one).
_TABLE = {
    "ipv4-addr": "ip",
    "ipv6-addr": "ip",
    "domain-name": "domain",
    "url": "url",
    "file-hash": "hash",
    "email-addr": "email",
}


@dataclass(frozen=True, slots=True)
class Hit:
    """Row ``row`` of a batch holds indicator ``indicator`` (its index in the set) in
    ``field``."""

    row: int
    indicator: int
    field: str


@dataclass
class IndicatorSet:
    """Indicators ready to match, built once (:meth:`build`) and shared by every batch (and
    pickled to hunt workers). Per indicator, in input order: kind, canonical value, ref,
    source, confidence, valid_until (epoch seconds, ``inf`` when open-ended); per table, the
    canonical value to the indicator's index (a list when several feeds hold one value)."""

    now: float
    tables: dict[str, dict[str, int | list[int]]]
    kinds: bytearray = field(default_factory=bytearray)
    values: list[str] = field(default_factory=list)
    #: Refs of the STIX form ``indicator--<UUID>`` (lower-case) as the UUID's 16 bytes, 16 per
    #: indicator, all zero for another ref, which :attr:`other_refs` holds: a million refs
    #: as text would take 96 MiB, as bytes 16.
    ref_ids: bytearray = field(default_factory=bytearray)
    other_refs: dict[int, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # distinct source names
    source_of: array = field(default_factory=lambda: array("I"))
    confidences: bytearray = field(default_factory=bytearray)
    valid_until: array = field(default_factory=lambda: array("d"))
    #: Indicators refused, per reason.
    refused: Counter[str] = field(default_factory=Counter)
    #: The roles of :data:`FIELDS` the kinds held need read, and those fields (set by the
    #: builder): an empty set reads nothing.
    roles: tuple[str, ...] = ()
    fields: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        indicators: Iterable[Indicator],
        *,
        now: datetime | None = None,
        refused: Callable[[int, Indicator, str], None] | None = None,
    ) -> IndicatorSet:
        """The set of ``indicators``; each one refused is counted in :attr:`refused` by reason
        and told to ``refused(position, indicator, reason)``."""
        builder = IndicatorSetBuilder(now)
        with without_gc():
            for position, indicator in enumerate(indicators):
                reason = builder.add(indicator)
                if reason is not None and refused is not None:
                    refused(position, indicator, reason)
        return builder.finish()

    def __len__(self) -> int:
        return len(self.kinds)

    # -- matching ------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Which fields the kinds held need read, with their roles and order."""
        present = {KINDS[k] for k in set(self.kinds)}
        self.roles = tuple(r for r in FIELDS if any(r in ROLES_OF_KIND[k] for k in present))
        wanted = {f for role in self.roles for f in FIELDS[role]}
        if self.tables["url"]:
            wanted.update(f for pair in URL_PAIRS for f in pair)
        self.fields = frozenset(wanted)

    def match(self, events: list[dict[str, Any]], times: list[str | None]) -> list[Hit]:
        """The hits in a batch's ``events`` (with their ``times``), by row, then field (in
        :data:`FIELDS` order), then indicator: deterministic for a given batch."""
        if not self.fields or not events:
            return []
        return self.match_columns(encode(events, self.fields), times)

    def match_columns(self, columns: dict[Any, Column], times: list[str | None]) -> list[Hit]:
        """:meth:`match` on a batch already dictionary-encoded (by the engine, which encodes
        :attr:`fields` with its rules' in one pass: ``Engine(plan, extra_fields=...)``);
        ``columns`` must hold every one of :attr:`fields` that the batch has."""
        roles = self.roles
        if not roles:
            return []
        fields = {f: role for role in roles for f in FIELDS[role]}
        pairs = URL_PAIRS if self.tables["url"] else ()
        found: list[tuple[int, int, int, str]] = []  # (row, field rank, indicator, field)
        rank = {f: i for i, f in enumerate([*fields, *(f"{h}+{t}" for h, t in pairs)])}
        for name, column in columns.items():
            role = fields.get(name)
            if role is None:
                continue
            look = self._lookers[role]
            memo = self._memo[role]
            if len(memo) > MEMO_SIZE:
                memo.clear()
            for code, value in enumerate(column.uniques):
                hits = memo.get(value)
                if hits is None:
                    hits = memo[value] = look(self, value)
                if hits:
                    for row in np.flatnonzero(column.codes == code).tolist():
                        found.extend((row, rank[name], i, name) for i in hits)
        for host_field, target_field in pairs:
            hosts, targets = columns.get(host_field), columns.get(target_field)
            if hosts is None or targets is None:
                continue
            name = f"{host_field}+{target_field}"
            both = np.flatnonzero((hosts.codes >= 0) & (targets.codes >= 0))
            if not both.size:
                continue
            # Each distinct (host, target) pair once.
            width = len(targets.uniques)
            pair = hosts.codes[both].astype(np.int64) * width + targets.codes[both]
            distinct, inverse = np.unique(pair, return_inverse=True)
            for n, code in enumerate(distinct.tolist()):
                hits = self._host_target(
                    hosts.uniques[code // width], targets.uniques[code % width]
                )
                if hits:
                    for row in both[inverse == n].tolist():
                        found.extend((row, rank[name], i, name) for i in hits)
        if not found:
            return []
        found.sort()
        out = []
        valid_until = self.valid_until
        moments: dict[int, float] = {}
        for row, _, i, name in found:
            until = valid_until[i]
            if until != math.inf:
                moment = moments.get(row)
                if moment is None:
                    moment = moments[row] = _moment(times[row], self.now)
                if moment >= until:
                    continue  # expired when the event happened
            out.append(Hit(row, i, name))
        return out

    def _get(self, table: str, key: str) -> tuple[int, ...]:
        found = self.tables[table].get(key)
        if found is None:
            return ()
        return (found,) if type(found) is int else tuple(found)  # type: ignore[arg-type]

    def _ip(self, text: str) -> tuple[int, ...]:
        if not self.tables["ip"]:
            return ()
        if ":" in text:
            try:
                text = _ipv6(text.strip("[]"))
            except (OSError, ValueError):
                return ()
        return self._get("ip", text)

    def _domain(self, text: str) -> tuple[int, ...]:
        """Domain indicators of the name and its parents; address indicators when it is an
        address."""
        name = text.strip().rstrip(".").lower()
        if not name:
            return ()
        if ":" in name:
            if name.startswith("["):  # "[::1]:80"
                return self._ip(name[1 : name.find("]")] if "]" in name else name[1:])
            if name.count(":") > 1:  # a bare IPv6 address
                return self._ip(name)
            name = name.partition(":")[0]  # a Host header with its port
        if name[-1:].isdigit() and _IPV4.fullmatch(name):
            return self._get("ip", name)
        table = self.tables["domain"]
        if not table:
            return ()
        if not name.isascii():
            try:
                name = name.encode("idna").decode("ascii")
            except UnicodeError:
                return ()
        out: tuple[int, ...] = ()
        while True:
            found = table.get(name)
            if found is not None:
                out += (found,) if type(found) is int else tuple(found)  # type: ignore[arg-type]
            dot = name.find(".")
            if dot < 0 or name.find(".", dot + 1) < 0:
                return out  # a bare TLD is never an indicator
            name = name[dot + 1 :]

    def _host_hits(self, host: str) -> tuple[int, ...]:
        return self._ip(host) if ":" in host or _IPV4.fullmatch(host) else self._domain(host)

    def _url(self, text: str) -> tuple[int, ...]:
        try:
            key, host = split_url(text)
        except IndicatorError:
            return ()
        return self._get("url", key) + self._host_hits(host)

    def _host_target(self, host: Any, target: Any) -> list[int]:
        """URL indicators of a request's Host header and target (a path, or a proxy's whole
        URL)."""
        if type(host) is not str or type(target) is not str or not self.tables["url"]:
            return []
        if not target.startswith("/"):
            return list(self._get("url", _url_key(target))) if "://" in target else []
        scheme = "https" if host.endswith(":443") else "http"
        return list(self._get("url", _url_key(f"{scheme}://{host}{target}")))

    def _hash(self, text: str) -> tuple[int, ...]:
        if "=" not in text:
            return self._get("hash", text.strip().lower())
        out: tuple[int, ...] = ()
        for part in text.split(","):
            algorithm, _, value = part.partition("=")
            if algorithm.strip().upper() in ("MD5", "SHA1", "SHA256"):
                out += self._get("hash", value.strip().lower())
        return out

    def _email(self, text: str) -> tuple[int, ...]:
        addresses = _BRACKETED.findall(text) or [text]
        out: tuple[int, ...] = ()
        for address in addresses:
            local, at, domain = address.strip().rpartition("@")
            if not at:
                continue
            domain = domain.lower()
            out += self._get("email", f"{local.lower()}@{domain}") + self._domain(domain)
        return out

    @staticmethod
    def _each(look: Callable[[IndicatorSet, str], tuple[int, ...]]) -> Callable:
        """``look`` for one distinct value of a field: text, or a list's texts."""

        def on(self: IndicatorSet, value: Any) -> tuple[int, ...]:
            if type(value) is str:
                return look(self, value) if value else ()
            if type(value) is tuple:
                out: tuple[int, ...] = ()
                for item in value:
                    if type(item) is str and item:
                        out += look(self, item)
                return tuple(dict.fromkeys(out))
            return ()

        return on

    _lookers: dict[str, Callable] = field(default_factory=dict, init=False, repr=False)
    #: Per role, what a field value looked up (hits or ``()``), across batches: a log's values
    #: repeat from batch to batch (its servers, resolvers, names). Not pickled.
    _memo: dict[str, dict[Any, tuple[int, ...]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        self._memo = {role: {} for role in FIELDS}
        self._lookers = {
            "ip": self._each(IndicatorSet._ip),
            "domain": self._each(IndicatorSet._domain),
            "url": self._each(IndicatorSet._url),
            "hash": self._each(IndicatorSet._hash),
            "email": self._each(IndicatorSet._email),
        }

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lookers", None)
        state.pop("_memo", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__post_init__()

    # -- what an alert says ----------------------------------------------------------------

    def ref(self, index: int) -> str:
        """Indicator ``index``'s ref, as it was given."""
        other = self.other_refs.get(index)
        if other is not None:
            return other
        raw = self.ref_ids[index * 16 : index * 16 + 16].hex()
        return f"indicator--{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    def describe(self, index: int) -> dict[str, Any]:
        """Indicator ``index`` as plain data: kind, value, ref, source, confidence, level,
        valid_until (ISO 8601 UTC or None)."""
        until = self.valid_until[index]
        return {
            "kind": KINDS[self.kinds[index]],
            "value": self.values[index],
            "ref": self.ref(index),
            "source": self.sources[self.source_of[index]],
            "confidence": self.confidences[index],
            "level": level_of(self.confidences[index]),
            "valid_until": None
            if until == math.inf
            else datetime.fromtimestamp(until, UTC).isoformat().replace("+00:00", "Z"),
        }


@contextmanager
def without_gc() -> Iterator[None]:
    """The cyclic collector paused: a set holds no cycles, and with millions of indicators
    alive each of its full passes would walk them all while the set is built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _url_key(text: str) -> str:
    try:
        return split_url(text)[0]
    except IndicatorError:
        return ""


def _moment(text: str | None, now: float) -> float:
    found = epoch(text) if text else None
    return now if found is None else found


class IndicatorSetBuilder:
    """Adds indicators one by one (:meth:`add` says why one is refused), then :meth:`finish`."""

    def __init__(self, now: datetime | None = None) -> None:
        moment = now or datetime.now(UTC)
        if moment.tzinfo is None:
            raise IndicatorError("the set's clock must be timezone-aware")
        self.result = IndicatorSet(
            now=moment.timestamp(), tables={name: {} for name in dict.fromkeys(_TABLE.values())}
        )
        self._sources: dict[str, int] = {}

    def add(self, indicator: Indicator) -> str | None:
        """Add ``indicator``; the reason it is refused, or None."""
        try:
            self._add(indicator)
        except IndicatorError as exc:
            reason = str(exc)
            self.result.refused[reason] += 1
            return reason
        return None

    def _add(self, indicator: Indicator) -> None:
        kind, value = indicator.kind, indicator.value
        key = canonical(kind, value)
        ref = indicator.ref
        if not isinstance(ref, str) or not ref.strip():
            raise IndicatorError("the indicator has no ref (its STIX id)")
        if not ref.isascii() or "\x00" in ref:
            _clean(ref, "the ref")
        source = indicator.source
        # A source seen before is known to be good.
        code = self._sources.get(source) if type(source) is str else None
        if code is None:
            if not isinstance(source, str) or not source.strip():
                raise IndicatorError("the indicator has no source")
            _clean(source, "the source")
        confidence = indicator.confidence
        if type(confidence) is not int or not 0 <= confidence <= 100:
            raise IndicatorError("confidence must be an integer from 0 to 100")
        until = indicator.valid_until
        if until is None:
            seconds = math.inf
        elif not isinstance(until, datetime) or until.tzinfo is None:
            raise IndicatorError("valid_until must be a timezone-aware time")
        else:
            seconds = until.timestamp()
        s = self.result
        index = len(s.kinds)
        table = s.tables[_TABLE[kind]]
        before = table.get(key)
        if before is None:
            table[key] = index
        elif type(before) is int:
            table[key] = [before, index]
        else:
            before.append(index)  # type: ignore[union-attr]  (a list: many copies stay linear)
        s.kinds.append(_KIND_CODE[kind])
        s.values.append(key)
        if _STIX_ID.fullmatch(ref):
            s.ref_ids += bytes.fromhex(ref[11:].replace("-", ""))
        else:
            s.ref_ids += _NO_ID
            s.other_refs[index] = ref
        if code is None:
            code = self._sources[source] = len(s.sources)
            s.sources.append(source)
        s.source_of.append(code)
        s.confidences.append(confidence)
        s.valid_until.append(seconds)

    def finish(self) -> IndicatorSet:
        self.result._settle()
        return self.result


def rule_of(indicators: IndicatorSet, index: int, field_name: str) -> RuleMeta:
    """What an alert of indicator ``index`` matched in ``field_name`` says, in the shape of a
    rule's alert (``docs/alerts.md``), so that every sink and the console take it as it is:
    ``rule.id`` is the indicator's ref (its STIX id), ``rule.title`` names its kind and value,
    ``rule.level`` comes from its confidence, ``rule.path`` is ``intel:<source>``, and
    ``rule.tags`` say it all as data: ``intel.indicator``, ``intel.kind.<kind>``,
    ``intel.source.<source>``, ``intel.confidence.<n>``, ``intel.field.<field>``."""
    found = indicators.describe(index)
    value = found["value"]
    shown = value if len(value) <= 120 else value[:119] + "\u2026"
    return RuleMeta(
        id=found["ref"],
        title=f"Indicator match: {found['kind']} {shown}",
        level=found["level"],
        status=None,
        tags=(
            "intel.indicator",
            f"intel.kind.{found['kind']}",
            f"intel.source.{found['source']}",
            f"intel.confidence.{found['confidence']}",
            f"intel.field.{field_name}",
        ),
        logsource=(),
        path=f"intel:{found['source']}",
        description=f"{found['kind']} {value} from {found['source']} (confidence "
        f"{found['confidence']}, valid until {found['valid_until'] or 'no expiry'}) "
        f"found in the event's {field_name}",
        references=(found["ref"],),
        attributes=(*found.items(), ("field", field_name)),
    )


def indicator_hits(
    indicators: IndicatorSet | None, engine: Engine, batch: EventBatch
) -> list[tuple[int, int, str]]:
    """(row, indicator, field) of every indicator ``batch`` holds, from the columns ``engine``
    encoded for it (call after its :meth:`~Engine.match` of the batch)."""
    if indicators is None:
        return []
    columns = engine.columns
    hits = (
        indicators.match(batch.events, batch.times)
        if columns is None
        else indicators.match_columns(columns, batch.times)
    )
    return [(h.row, h.indicator, h.field) for h in hits]
