"""What an alert is about, read from its event: the user, the source and destination
addresses, and the text the inbox's search box matches.

Pure functions over the alert's JSON body (``docs/alerts.md``): no database, no web. The field
names are those the formats emit (Windows, syslog, access logs, Zeek, CEF), most specific first:
the account a logon targets before the account that asked for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Event fields naming the user an alert is about, most specific first.
USER_FIELDS = (
    "TargetUserName",  # Windows logons and account changes: the account acted on
    "user",  # syslog (sshd, sudo, su, PAM)
    "invalid_user",  # sshd "Invalid user x"
    "target_user",  # su / sudo target
    "User",  # Sysmon
    "SubjectUserName",  # Windows: the account that acted
    "c-username",  # access logs
    "cs-username",
    "username",  # Zeek (ntlm, ...)
    "duser",  # CEF
    "suser",
    "AccountName",
    "ruser",
)
#: Event fields holding the source address of the activity.
SOURCE_FIELDS = (
    "src_ip",
    "IpAddress",
    "SourceAddress",
    "SourceIp",
    "c-ip",
    "id.orig_h",
    "src",
    "SRC",
    "rhost",
)
#: Event fields holding the destination address.
DESTINATION_FIELDS = (
    "dst_ip",
    "DestinationIp",
    "DestAddress",
    "id.resp_h",
    "dst",
    "DST",
    "s-ip",
)
#: Values that mean "nobody" or "no address" in Windows and web logs.
EMPTY = frozenset({"", "-", "n/a", "N/A", "null", "NULL", "(null)", "?"})
#: At most this many characters of an alert are searchable (its event's values beyond that are
#: not): the search index grows with it.
MAX_SEARCH_TEXT = 32 * 1024
MAX_USER = 255


@dataclass(frozen=True, slots=True)
class Observables:
    user: str | None
    source_ip: str | None
    destination_ip: str | None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return None if text in EMPTY else text
    return None


def _address(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    if text.startswith("::ffff:") and "." in text:  # IPv4-mapped, as Windows writes it
        text = text[7:]
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def _first(event: dict[str, Any], fields: tuple[str, ...], read: Any) -> str | None:
    for name in fields:
        if name in event:
            found = read(event[name])
            if found is not None:
                return found
    return None


def observables(body: dict[str, Any]) -> Observables:
    """The user and addresses of an alert (None where its event names none)."""
    event = body.get("event")
    if not isinstance(event, dict):
        return Observables(None, None, None)
    user = _first(event, USER_FIELDS, _text)
    return Observables(
        user=user[:MAX_USER] if user else None,
        source_ip=_first(event, SOURCE_FIELDS, _address),
        destination_ip=_first(event, DESTINATION_FIELDS, _address),
    )


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, list):
        for item in value:
            yield from _values(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def search_text(body: dict[str, Any]) -> str:
    """The text the search box matches, lower-cased (searches are case-insensitive, the same on
    every database whatever its locale): rule title, host, then the event's values, one a line,
    at most :data:`MAX_SEARCH_TEXT` characters. A value already contained in the text is left
    out (a syslog event's program, user and address are in its message too): a search finds
    the same alerts, and every character left out is three trigrams fewer to index."""
    rule = body.get("rule") or {}
    text = "\n".join((str(rule.get("title") or ""), str(body.get("host") or ""))).lower()
    for value in _values(body.get("event") or {}):
        if len(text) >= MAX_SEARCH_TEXT:
            break
        value = value.lower()
        if value not in text:
            text += "\n" + value
    return text[:MAX_SEARCH_TEXT]


def identity(body: dict[str, Any]) -> dict[str, Any]:
    """The part of an alert that says which event and rule it is: the body without the paths
    of the log file and of the rule file, which differ when the same content is read from
    another place (an upload and a server copy of one file are one alert)."""
    out = dict(body)
    rule = out.get("rule")
    if isinstance(rule, dict):
        out["rule"] = {k: v for k, v in rule.items() if k != "path"}
    source = out.get("source")
    if isinstance(source, dict):
        out["source"] = {k: v for k, v in source.items() if k != "path"}
    correlation = out.get("correlation")
    if isinstance(correlation, dict) and isinstance(correlation.get("events"), list):
        out["correlation"] = {
            **correlation,
            "events": [
                {k: v for k, v in e.items() if k != "path"} if isinstance(e, dict) else e
                for e in correlation["events"]
            ],
        }
    return out


#: Kinds of an incident's observables, in the order pages show them.
KINDS = ("ip", "domain", "url", "hash", "account", "email", "file")
#: Event fields naming a domain, a URL, a file, an e-mail address.
DOMAIN_FIELDS = (
    "QueryName",
    "query",
    "DestinationHostname",
    "host_header",
    "cs-host",
    "server_name",
)
URL_FIELDS = ("uri", "cs-uri", "url", "request", "c-uri", "cs-referer")
FILE_FIELDS = ("TargetFilename", "Image", "ImageLoaded", "ParentImage", "ServiceFileName")
EMAIL_FIELDS = ("sender", "recipient", "from", "to", "mailfrom", "rcptto")
HASH_FIELDS = ("Hashes", "Hash", "md5", "sha1", "sha256", "FileHash")
_HEX_LENGTHS = {32, 40, 64}  # MD5, SHA-1, SHA-256
MAX_OBSERVABLE = 500


def _hashes(value: Any) -> Iterator[str]:
    text = _text(value)
    if text is None:
        return
    # Sysmon writes "SHA1=...,MD5=...,SHA256=...,IMPHASH=..."; an import hash is no file hash.
    for part in text.replace(";", ",").split(","):
        name, _, digest = part.rpartition("=")
        digest = digest.strip().lower()
        if name.strip().upper() == "IMPHASH":
            continue
        if len(digest) in _HEX_LENGTHS and all(c in "0123456789abcdef" for c in digest):
            yield digest


def _email(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.strip("<>").lower()
    local, at, domain = text.partition("@")
    return text if at and local and "." in domain and " " not in text else None


def _domain(value: Any) -> str | None:
    text = _text(value)
    if text is None or _address(text) is not None:
        return None
    text = text.rstrip(".").lower()
    labels = text.split(".")
    return text if len(labels) > 1 and all(labels) and " " not in text else None


def incident_observables(body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every observable of an alert as (kind, value): addresses, domains, URLs, hashes,
    accounts, e-mail addresses and file names, from the fields the formats emit. Values are
    cut to :data:`MAX_OBSERVABLE` characters; duplicates are the caller's to drop."""
    event = body.get("event")
    if not isinstance(event, dict):
        return
    found = observables(body)
    for address in (found.source_ip, found.destination_ip):
        if address:
            yield "ip", address
    if found.user:
        yield "account", found.user
    for name in DOMAIN_FIELDS:
        domain = _domain(event.get(name))
        if domain:
            yield "domain", domain[:MAX_OBSERVABLE]
    for name in URL_FIELDS:
        url = _text(event.get(name))
        if url:
            yield "url", url[:MAX_OBSERVABLE]
    for name in FILE_FIELDS:
        path = _text(event.get(name))
        if path:
            yield "file", path[:MAX_OBSERVABLE]
    for name in EMAIL_FIELDS:
        email = _email(event.get(name))
        if email:
            yield "email", email[:MAX_OBSERVABLE]
    for name in HASH_FIELDS:
        for digest in _hashes(event.get(name)):
            yield "hash", digest
