"""Redaction of personal data before threat intelligence leaves the organisation.

A :class:`RedactionPolicy` (one per collection) says which kinds of personal data to take out
and how: ``remove`` puts a typed placeholder (``[IIN]``, ``[phone]``, ...) in place of each
value; ``pseudonymise`` puts a keyed pseudonym (``[person-3f9a1c0d]``: HMAC-SHA256 with the
caller's key over the normalised value), so partners can still see that two reports speak of the
same person without learning who. The victim organisation is always replaced by its sector
(Chatham House style: "a bank"), never pseudonymised.

:func:`redact_text` finds the values and returns the text to send with :class:`Mark` s, the
positions in the original text, so a preview can show each one. :func:`redact_object` walks a
STIX 2.1 object (a plain JSON dict) the same way. :func:`preview` is :func:`redact_object`: what the
sender sees is, by construction, what is sent.

Detectors and their limits (each is a practical rule, not a guarantee; the sender's preview is
the last check):

- IIN: 12 digits (or ``900101 300 123``-style groups) not inside a longer run of digits or
  letters, kept unless the check digit and birth date are right (:mod:`qorgan.core.identifiers`):
  order numbers and hash fragments stay.
- Phone: Kazakh numbers only, found by libphonenumber (``phonenumbers``, region KZ): +7, 8 or 7
  and ten national digits starting with 7 (mobile 7xx or a city code 7xxx). Ten digits with no
  prefix count only when written with separators (``701 234 56 78``): a bare ten-digit run is
  more often an id. +7 9xx (Russia) and other countries are kept.
- E-mail: ``local@domain.tld`` anywhere, URLs included (an address in a ``mailto:`` or a query
  string is still the person's). Bare domains are kept.
- Account: ``DOMAIN\\user``, ``user@host.local``-style logins (no public top-level domain),
  ``user: asmith`` / ``Account Name: asmith`` mentions, the user folder of ``C:\\Users\\x`` and
  ``/home/x``. Built-in accounts (SYSTEM, LOCAL SERVICE, NETWORK SERVICE, Administrator, Guest,
  krbtgt, root, machine accounts ``NAME$``) are kept: they name no person, and attacks on them
  are the intelligence.
- Person name: capitalised words in a shape that names a person: a known given name (shipped
  list, ``given_names.txt``) with a surname, an initial or a patronymic; an initial with a
  surname-shaped word (-ov/-ev/-in/-ova/-bay/-bek/-uly..., Cyrillic or Latin); a patronymic
  (-ович/-овна/-ұлы/-қызы/-ovich/-uly...); a cue (Mr, Dr, г-н, пользователь, сотрудник) before
  a surname; a capitalised word before a surname-shaped one, except at a sentence start. Not
  found: a given name alone, a surname alone with no cue, "Smith A." (surname not of a listed
  shape before an initial), names in lower case, inflected Kazakh forms of given names, names not
  in the list with a surname of another shape. Kept: tool, product and malware names
  (a stop list), sentence-initial capitals, "U.S. Treasury"-style initials.
- In a STIX pattern, a ``user-account`` login, name or id and any ``display_name`` string are
  personal data whatever they look like, and are replaced whole.
- Internal address: IPv4/IPv6 addresses and CIDRs inside the policy's networks; all others are
  kept (attacker infrastructure is the point of sharing).
- Victim: the policy's names and aliases as written (list inflected forms as aliases).
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import resources
from itertools import pairwise
from typing import Any

import phonenumbers

from qorgan.core.errors import QorganError
from qorgan.core.identifiers import is_valid_iin

__all__ = [
    "GREEN",
    "Kind",
    "Mark",
    "Mode",
    "PathMark",
    "Redacted",
    "RedactedObject",
    "RedactionError",
    "RedactionPolicy",
    "Victim",
    "preview",
    "redact_object",
    "redact_text",
]


class RedactionError(QorganError):
    """A policy that cannot be applied; the message never holds personal data or the key."""


class Kind(StrEnum):
    """A kind of personal data the policy may take out."""

    iin = "iin"
    phone = "phone"
    email = "email"
    person_name = "person_name"
    account = "account"
    internal_address = "internal_address"
    victim = "victim"


class Mode(StrEnum):
    """How a found value is replaced."""

    remove = "remove"  # a typed placeholder: [IIN]
    pseudonymise = "pseudonymise"  # a keyed, stable pseudonym: [IIN-0f3a9c1d]


#: The placeholder's word per kind; the pseudonym is ``[<word>-<8 hex>]`` with spaces as dashes.
_LABELS: dict[Kind, str] = {
    Kind.iin: "IIN",
    Kind.phone: "phone",
    Kind.email: "e-mail",
    Kind.person_name: "person",
    Kind.account: "account",
    Kind.internal_address: "internal address",
}
#: 8 hex digits (32 bits): collisions among the few thousand people of one collection are
#: unlikely, and the pseudonym stays short enough to read in a sentence.
_PSEUDONYM_HEX = 8
_MIN_KEY_BYTES = 16

#: When two findings overlap, the longer wins; on equal length the earlier kind here.
_PRIORITY = (
    Kind.victim,
    Kind.email,
    Kind.account,
    Kind.iin,
    Kind.phone,
    Kind.internal_address,
    Kind.person_name,
)


@dataclass(frozen=True, slots=True)
class Victim:
    """The victim organisation: the names it is known by and the sector that replaces them."""

    names: tuple[str, ...]
    sector: str  # "a bank", "a telecom operator"

    def __post_init__(self) -> None:
        if not self.names or not all(n.strip() for n in self.names):
            raise RedactionError("a victim needs at least one non-empty name")
        # The sector goes inside STIX pattern strings and JSON values: no quotes or escapes.
        if not self.sector.strip() or any(c in self.sector for c in "'\"\\"):
            raise RedactionError("a victim's sector is plain text without quotes or backslashes")


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class RedactionPolicy:
    """What to take out of one collection's intelligence, and how.

    ``internal_networks`` are the victim's own ranges (CIDRs); ``key`` is the HMAC key for
    ``pseudonymise`` (at least 16 bytes, from the deployment's secrets: there is no default).
    """

    kinds: frozenset[Kind]
    mode: Mode = Mode.remove
    key: bytes | None = field(default=None, repr=False)
    internal_networks: tuple[_Network, ...] = ()
    victim: Victim | None = None
    kept_accounts: frozenset[str] = field(
        default=frozenset(
            {
                "system",
                "local service",
                "localservice",
                "network service",
                "networkservice",
                "anonymous logon",
                "administrator",
                "guest",
                "krbtgt",
                "root",
                "defaultaccount",
                "wdagutilityaccount",
                "public",
                "default",
                "all users",
            }
        )
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(Kind(k) for k in self.kinds))
        object.__setattr__(self, "mode", Mode(self.mode))
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in self.internal_networks)
        except ValueError:
            raise RedactionError("an internal network is not a valid CIDR") from None
        object.__setattr__(self, "internal_networks", networks)
        if self.mode is Mode.pseudonymise and (
            not isinstance(self.key, bytes) or len(self.key) < _MIN_KEY_BYTES
        ):
            raise RedactionError(f"pseudonymise needs a key of at least {_MIN_KEY_BYTES} bytes")

    @classmethod
    def green(
        cls,
        *,
        internal_networks: Iterable[str | _Network] = (),
        victim: Victim | None = None,
        mode: Mode = Mode.remove,
        key: bytes | None = None,
    ) -> RedactionPolicy:
        """The default policy: every kind of personal data is taken out.

        ``internal_networks`` may be CIDR strings ("10.0.0.0/8"); a bad one is refused.
        """
        try:
            networks = tuple(ipaddress.ip_network(n, strict=False) for n in internal_networks)
        except ValueError:
            raise RedactionError("an internal network is not a valid CIDR") from None
        return cls(
            kinds=frozenset(Kind),
            mode=mode,
            key=key,
            internal_networks=networks,
            victim=victim,
        )


#: The default policy constructor (every kind), as issue 13 names it.
GREEN = RedactionPolicy.green


@dataclass(frozen=True, slots=True)
class Mark:
    """One redaction: ``original[start:end]`` became ``replacement``."""

    start: int
    end: int
    kind: Kind
    replacement: str


@dataclass(frozen=True, slots=True)
class Redacted:
    """The text to send and where it differs from the original (sorted, non-overlapping)."""

    text: str
    marks: tuple[Mark, ...]


@dataclass(frozen=True, slots=True)
class PathMark:
    """A :class:`Mark` in the string at ``path`` of a STIX object.

    A mark spanning a whole value with an empty replacement, at a path missing from the redacted
    object, means the property was removed (a victim's or person's ``contact_information``).
    """

    path: tuple[str | int, ...]
    mark: Mark


@dataclass(frozen=True, slots=True)
class RedactedObject:
    """The STIX object to send (a new dict) and every redaction with its JSON path."""

    object: dict[str, Any]
    marks: tuple[PathMark, ...]


# --- finding ------------------------------------------------------------------------------

_Finding = tuple[int, int, Kind, str]  # start, end, kind, normalised value (for pseudonyms)

_IIN = re.compile(
    r"""
    (?<!\w)(?<!\d[.,/:-])     # not the tail of a word, hash, longer number or version
    ([0-9]{6})[ -]?([0-9]{3})[ -]?([0-9]{3})  # 12 digits, or 6-3-3 groups
    (?![\w]|[.,/:-]\d)      # not followed by more of a number
    """,
    re.VERBOSE,
)

_EMAIL = re.compile(
    r"""
    (?<![\w.%+-])
    ([A-Za-z0-9_][A-Za-z0-9._%+-]{0,63})  # local part (a stray dot still names a person)
    @
    ((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})  # domain.tld
    (?![\w-]|\.[A-Za-z0-9])
    """,
    re.VERBOSE,
)
#: ``user@host`` where the host has no public top-level domain: a login, not a mailbox.
_LOGIN_AT = re.compile(
    r"(?<![\w.%+-])([A-Za-z0-9][\w.-]{0,63})@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)(?![\w.-])"
)
_INTERNAL_TLDS = frozenset({"local", "lan", "corp", "internal", "intra", "intranet", "ad", "home"})

_DOMAIN_USER = re.compile(
    r"""
    (?<![\w\\/.:$-])
    ([A-Za-z][\w.-]{0,14})  # NetBIOS or DNS domain
    \\{1,2}                  # one backslash, or two in escaped text (JSON, STIX patterns)
    ([\w.-]{1,64}\$?)       # the user (a trailing $ is a machine account)
    (?![\w\\$-])
    """,
    re.VERBOSE,
)
_PROFILE_DIR = re.compile(r"(?i)(?:\\{1,2}Users\\{1,2}|/home/|/Users/)([\w.-]{1,64})(?![\w-])")
_USER_MENTION = re.compile(
    r"""
    \b(?:(?:target|subject)\s+)?
    (?:user\s?name|account\s?name|user|login|логин|пользователь|учётная\s+запись
       |учетная\s+запись|пайдаланушы|тіркелгі)
    \s*[:=]\s*["']?
    ([\w.$@\\-]{1,64})
    """,
    re.VERBOSE | re.IGNORECASE,
)

_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(/\d{1,2})?(?!\.?\d)(?![\w])")
_IPV6 = re.compile(r"(?<![\w:.])((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4})(/\d{1,3})?(?![\w:])")

#: A capitalised word (any script, hyphenated parts allowed) or initials ("A.", "А.Б.").
_TOKEN = re.compile(
    r"(?P<initials>(?:[^\W\d_]\.\s?){1,2}(?![^\W\d_]))|(?P<word>[^\W\d_]+(?:-[^\W\d_]+)?)"
)
_CYR_SURNAME = re.compile(
    r"(?:ов|ев|ёв|ин|ын|ский|цкий|енко|бай|бек|баев|беков|ова|ева|ёва|ина|ына|ская|цкая"
    r"|ұлы|улы|қызы|кызы)(?:а|у|ым|ой|ым|е|ых|ой)?$"
)
_LAT_SURNAME = re.compile(
    r"(?:ov|ova|ev|eva|yev|yeva|enko|bayev|bekov|uly|kyzy|ski|sky|skaya|skiy|ovs?kiy)$"
)
_PATRONYMIC = re.compile(
    r"(?:ович|евич|овна|евна|ична|инична|ұлы|улы|қызы|кызы)(?:а|у|ем|ой|е|ым)?$"
    r"|(?:ovich|evich|ovna|evna|ichna|uly|kyzy|ulu|kyzi)$"
)
#: Words that may follow a given name or an initial without making a person of them.
_NOT_NAMES = frozenset(
    """
    windows server microsoft office exchange defender endpoint security strike agent team group
    bank street kaspersky cobalt mimikatz emotet powershell linux ubuntu debian active directory
    outlook azure cloud edition update service services the this that then and but for from with
    threat report incident appendix figure table section ransomware loader
    банк сервер центр отдел служба республики казахстан алматы астана
    """.split()  # noqa: SIM905 (a word list reads better as text)
)
#: A title before any capitalised word makes it a person ("Mr Smith", "г-н Абенов").
_TITLE_CUES = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof)\.?|\bг-н|\bг-жа)\s+$")
#: A role before a surname-shaped word makes it a person ("пользователь Иванов"), not before
#: any word ("user Administrator", "пользователь Windows").
_ROLE_CUES = re.compile(
    r"(?:гражданин[а-я]*|гражданк[а-я]+|пользовател[ьяюем]+|сотрудни[кцаыуом]+|инженер[а-я]*"
    r"|администратор[а-я]*|қызметкер[іге]*|азамат[тың]*|employee|user|analyst|engineer)\s+$",
    re.IGNORECASE,
)


@cache
def _given_names() -> frozenset[str]:
    text = resources.files("qorgan.intel").joinpath("given_names.txt").read_text("utf-8")
    return frozenset(
        line.strip().casefold()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


def _iins(text: str) -> Iterator[_Finding]:
    for m in _IIN.finditer(text):
        digits = "".join(m.groups())
        if is_valid_iin(digits):
            yield m.start(), m.end(), Kind.iin, digits


def _phones(text: str) -> Iterator[_Finding]:
    for m in phonenumbers.PhoneNumberMatcher(text, "KZ", leniency=phonenumbers.Leniency.POSSIBLE):
        national = str(m.number.national_number)
        if m.number.country_code != 7 or len(national) != 10 or not national.startswith("7"):
            continue
        raw = m.raw_string
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("+"):
            ok = digits.startswith("7") and len(digits) == 11
        elif len(digits) == 11:
            ok = digits[0] in "78"
        else:  # ten digits with no prefix: only when written in groups, not as one run
            ok = len(digits) == 10 and digits != raw
        start, end = m.start, m.end
        before = text[start - 1] if start > 0 else " "
        after = text[end : end + 2]
        # part of something longer: a word, a version, an address ("10.7701...", "...78:443")
        joined = before in "._-/:" and start > 1 and text[start - 2].isalnum()
        if not ok or before.isalnum() or joined or after[:1].isalnum():
            continue
        if len(after) == 2 and after[0] in ".:-/" and after[1].isdigit():
            continue
        yield start, end, Kind.phone, "+7" + national


def _emails(text: str) -> Iterator[_Finding]:
    for m in _EMAIL.finditer(text):
        if m.group(2).rsplit(".", 1)[1].casefold() in _INTERNAL_TLDS:
            continue  # a login (asmith@corp.local): an account, see _accounts
        yield m.start(), m.end(), Kind.email, m.group(0).casefold()


def _accounts(text: str, kept: frozenset[str]) -> Iterator[_Finding]:
    def keep(user: str) -> bool:
        u = user.casefold().rstrip("$")
        # "-" and "0" are what Windows logs write when there is no account
        return u in kept or user.endswith("$") or u.isdigit() or not any(c.isalnum() for c in u)

    for m in _DOMAIN_USER.finditer(text):
        # NT AUTHORITY\... and NT SERVICE\... are Windows' own principals, never a person
        nt = m.group(1).casefold() in {"authority", "service"} and text[: m.start()].endswith("NT ")
        if not nt and not keep(m.group(2)):
            norm = m.group(1).casefold() + "\\" + m.group(2).casefold()
            yield m.start(), m.end(), Kind.account, norm
    for m in _LOGIN_AT.finditer(text):
        host = m.group(2)
        if ("." not in host or host.rsplit(".", 1)[1].casefold() in _INTERNAL_TLDS) and not keep(
            m.group(1)
        ):
            yield m.start(), m.end(), Kind.account, m.group(0).casefold()
    for regex in (_PROFILE_DIR, _USER_MENTION):
        for m in regex.finditer(text):
            user = m.group(1).rstrip(".")
            if user and not keep(user):
                yield m.start(1), m.start(1) + len(user), Kind.account, user.casefold()


def _internal_addresses(text: str, networks: tuple[_Network, ...]) -> Iterator[_Finding]:
    if not networks:
        return
    for regex in (_IPV4, _IPV6):
        for m in regex.finditer(text):
            try:
                net = ipaddress.ip_network(m.group(1) + (m.group(2) or ""), strict=False)
            except ValueError:
                continue
            if any(net.version == n.version and net.subnet_of(n) for n in networks):  # type: ignore[arg-type]
                yield m.start(), m.end(), Kind.internal_address, str(net)


def _victims(text: str, victim: Victim | None) -> Iterator[_Finding]:
    if victim is None:
        return
    names = sorted({n.strip() for n in victim.names}, key=len, reverse=True)
    pattern = r"(?<!\w)(?:" + "|".join(re.escape(n) for n in names) + r")(?!\w)"
    for m in re.finditer(pattern, text, re.IGNORECASE):
        yield m.start(), m.end(), Kind.victim, victim.sector


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos].rstrip(" \t\"'«“(")
    return not before or before[-1] in ".!?:;\n•-—"


def _persons(text: str) -> Iterator[_Finding]:
    given = _given_names()
    tokens: list[tuple[int, int, str]] = []  # start, end, class
    for m in _TOKEN.finditer(text):
        if m.group("initials"):
            letters = [c for c in m.group("initials") if c.isalpha()]
            if all(c.isupper() for c in letters):
                end = m.start() + len(m.group("initials").rstrip())
                tokens.append((m.start(), end, "I" if len(letters) == 1 else "J"))
            else:
                tokens.append((m.start(), m.end(), "-"))
            continue
        word = m.group("word")
        folded = word.casefold()
        if not word[0].isupper() or word.isupper() or folded in _NOT_NAMES:
            tokens.append((m.start(), m.end(), "-"))
        elif _PATRONYMIC.search(folded) and len(word) > 6:
            tokens.append((m.start(), m.end(), "P"))
        elif folded in given:
            tokens.append((m.start(), m.end(), "G"))
        elif len(word) > 4 and (_CYR_SURNAME.search(folded) or _LAT_SURNAME.search(folded)):
            tokens.append((m.start(), m.end(), "S"))
        else:
            tokens.append((m.start(), m.end(), "C"))

    def adjacent(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
        gap = text[a[1] : b[0]]
        return len(gap) <= 2 and gap.strip(" ,") == "" and "\n" not in gap

    i = 0
    while i < len(tokens):
        # the longest run of up to 3 adjacent capitalised tokens from i that reads as a name
        found = 0
        for length in (3, 2):
            window = tokens[i : i + length]
            if len(window) < length or any(not adjacent(a, b) for a, b in pairwise(window)):
                continue
            if any(text[a[1] : b[0]].strip() == "," for a, b in pairwise(window)):
                continue
            classes = "".join(t[2] for t in window)
            initial_c = window[0][2] == "C" and _sentence_start(text, window[0][0])
            if _is_name(classes) and not (initial_c and classes[:2] in {"CS", "CP"}):
                found = length
                break
        if not found and tokens[i][2] in "SC":
            before = text[: tokens[i][0]]
            if _TITLE_CUES.search(before) or (tokens[i][2] == "S" and _ROLE_CUES.search(before)):
                found = 1
        if found:
            start, end = tokens[i][0], tokens[i + found - 1][1]
            yield start, end, Kind.person_name, " ".join(text[start:end].casefold().split())
            i += found
        else:
            i += 1


#: Class strings of 2-3 adjacent tokens that name a person: G given name, S surname-shaped,
#: P patronymic, I initials (J two initials, read as I but never before C), C another
#: capitalised word.
_NAME_SHAPES = frozenset(
    {"GS", "GC", "GG", "SG", "GI", "IS", "SI", "IC", "CS", "GP", "SP", "CP"}
    | {"GPS", "GPC", "SGP", "CGP", "GSP", "GCP", "GGS", "IIS", "SGG", "SGC", "GSI"}
)


def _is_name(classes: str) -> bool:
    # Two initials (J) name a person as one initial does, but not before any capitalised word:
    # "А.Б. Абенов" is a person, "U.S. Treasury" is not.
    if "JC" in classes:
        return False
    classes = classes.replace("J", "I")
    if classes in _NAME_SHAPES:
        return True
    return len(classes) == 3 and "-" not in classes and "P" in classes[1:]


def _findings(text: str, policy: RedactionPolicy) -> list[_Finding]:
    kinds = policy.kinds
    found: list[_Finding] = []
    if Kind.victim in kinds:
        found += _victims(text, policy.victim)
    if Kind.email in kinds:
        found += _emails(text)
    if Kind.account in kinds:
        found += _accounts(text, policy.kept_accounts)
    if Kind.iin in kinds:
        found += _iins(text)
    if Kind.phone in kinds:
        found += _phones(text)
    if Kind.internal_address in kinds:
        found += _internal_addresses(text, policy.internal_networks)
    if Kind.person_name in kinds:
        found += _persons(text)
    # Longer first, then the more specific kind: an e-mail with digits stays one e-mail.
    found.sort(key=lambda f: (f[0] - f[1], _PRIORITY.index(f[2]), f[0]))
    chosen: list[_Finding] = []  # kept sorted by start, non-overlapping: check the neighbours
    for f in found:
        i = bisect.bisect_left(chosen, f[0], key=lambda c: c[0])
        if (i == 0 or chosen[i - 1][1] <= f[0]) and (i == len(chosen) or f[1] <= chosen[i][0]):
            chosen.insert(i, f)
    return chosen


def _replacement(kind: Kind, value: str, policy: RedactionPolicy) -> str:
    if kind is Kind.victim:
        return value  # the sector
    label = _LABELS[kind]
    if policy.mode is Mode.remove:
        return f"[{label}]"
    assert policy.key is not None  # checked by the policy
    digest = hmac.new(policy.key, f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()
    return f"[{label.replace(' ', '-')}-{digest[:_PSEUDONYM_HEX]}]"


def _apply(text: str, marks: Iterable[Mark]) -> str:
    parts: list[str] = []
    pos = 0
    for mark in marks:
        parts.append(text[pos : mark.start])
        parts.append(mark.replacement)
        pos = mark.end
    parts.append(text[pos:])
    return "".join(parts)


def redact_text(text: str, policy: RedactionPolicy) -> Redacted:
    """The text with the policy's kinds of personal data replaced, and the marks."""
    marks: list[Mark] = []
    for start, end, kind, value in _findings(text, policy):
        replacement = _replacement(kind, value, policy)
        # "Halyk Bank was hit" -> "A bank was hit", but a label "Halyk" -> "a bank"
        whole = start == 0 and end == len(text)
        if kind is Kind.victim and not whole and _sentence_start(text, start):
            replacement = replacement[:1].upper() + replacement[1:]
        marks.append(Mark(start, end, kind, replacement))
    return Redacted(text=_apply(text, marks), marks=tuple(marks))


# --- STIX objects ---------------------------------------------------------------------------

#: Properties that are identifiers, times or vocabulary, never free text: left as they are.
_UNTOUCHED = frozenset(
    {
        "id",
        "type",
        "spec_version",
        "created",
        "modified",
        "valid_from",
        "valid_until",
        "first_seen",
        "last_seen",
        "first_observed",
        "last_observed",
        "number_observed",
        "published",
        "created_by_ref",
        "object_marking_refs",
        "pattern_type",
        "pattern_version",
        "lang",
        "confidence",
        "revoked",
        "hashes",
        "identity_class",
        "start",
        "stop",
    }
)
_ACCOUNT_FIELDS = ("account_login", "display_name", "user_id")
#: A single-quoted STIX pattern string: the only place in a pattern that holds data.
_PATTERN_STRING = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _untouched(key: str) -> bool:
    return key in _UNTOUCHED or key.endswith(("_ref", "_refs"))


def _whole(value: str, kind: Kind, norm: str, policy: RedactionPolicy) -> Mark:
    return Mark(0, len(value), kind, _replacement(kind, norm, policy))


#: The object path compared with a pattern string: ``user-account:account_login = '...'``.
_PATTERN_PATH = re.compile(r"([a-z0-9-]+):([a-z0-9_.]+)[^\[\]']*$")


def _whole_in_pattern(object_type: str, object_path: str) -> Kind | None:
    """The kind of a pattern string that is personal data whatever it looks like, or None."""
    last = object_path.rsplit(".", 1)[-1]
    if object_type == "user-account" and last in _ACCOUNT_FIELDS:
        return Kind.account
    if last == "display_name":  # email-addr:display_name, email-message:from_ref.display_name
        return Kind.person_name
    return None


def _redact_pattern(pattern: str, policy: RedactionPolicy) -> Redacted:
    marks: list[Mark] = []
    for m in _PATTERN_STRING.finditer(pattern):
        path = _PATTERN_PATH.search(pattern[: m.start()])
        kind = _whole_in_pattern(path.group(1), path.group(2)) if path else None
        value = m.group(1)
        if (
            kind is not None
            and kind in policy.kinds
            and value
            and value.casefold() not in policy.kept_accounts
        ):
            norm = value.replace("\\\\", "\\").casefold()  # as in the object itself
            if kind is Kind.person_name:
                norm = " ".join(norm.split())
            replacement = _replacement(kind, norm, policy).replace("'", "").replace("\\", "")
            marks.append(Mark(m.start(1), m.end(1), kind, replacement))
            continue
        inner = redact_text(m.group(1), policy)
        for mark in inner.marks:
            safe = mark.replacement.replace("'", "").replace("\\", "")
            marks.append(Mark(m.start(1) + mark.start, m.start(1) + mark.end, mark.kind, safe))
    return Redacted(text=_apply(pattern, marks), marks=tuple(marks))


def _walk(
    value: Any, path: tuple[str | int, ...], policy: RedactionPolicy, out: list[PathMark]
) -> Any:
    if isinstance(value, str):
        is_pattern = path[-1:] == ("pattern",)
        result = _redact_pattern(value, policy) if is_pattern else redact_text(value, policy)
        out.extend(PathMark(path, m) for m in result.marks)
        return result.text
    if isinstance(value, list):
        return [_walk(v, (*path, i), policy, out) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return _walk_object(value, path, policy, out)
    return copy.deepcopy(value)


def _walk_object(
    obj: Mapping[str, Any],
    path: tuple[str | int, ...],
    policy: RedactionPolicy,
    out: list[PathMark],
) -> dict[str, Any]:
    kinds = policy.kinds
    kind_of_object = obj.get("type")
    result: dict[str, Any] = {}
    for key, value in obj.items():
        here = (*path, key)
        if _untouched(key):
            result[key] = copy.deepcopy(value)
            continue
        if (
            kind_of_object == "user-account"
            and key in _ACCOUNT_FIELDS
            and isinstance(value, str)
            and Kind.account in kinds
            and value.casefold() not in policy.kept_accounts
        ):
            mark = _whole(value, Kind.account, value.casefold(), policy)
            out.append(PathMark(here, mark))
            result[key] = mark.replacement
            continue
        if kind_of_object == "identity" and isinstance(value, str):
            whole = _identity_field(obj, key, value, policy)
            if whole is not None:
                out.append(PathMark(here, whole))
                if whole.replacement:
                    result[key] = whole.replacement
                continue
        result[key] = _walk(value, here, policy, out)
    return result


def _identity_field(
    obj: Mapping[str, Any], key: str, value: str, policy: RedactionPolicy
) -> Mark | None:
    """A whole-value redaction of an identity's name or contacts, or None to walk the value."""
    name = obj.get("name")
    victim = policy.victim
    is_victim = (
        Kind.victim in policy.kinds
        and victim is not None
        and isinstance(name, str)
        and name.strip().casefold() in {n.strip().casefold() for n in victim.names}
    )
    is_person = Kind.person_name in policy.kinds and obj.get("identity_class") == "individual"
    if victim is not None and is_victim:
        if key == "name":
            return Mark(0, len(value), Kind.victim, victim.sector)
        if key == "contact_information":
            return Mark(0, len(value), Kind.victim, "")
    elif is_person:
        if key == "name":
            norm = " ".join(value.casefold().split())
            return _whole(value, Kind.person_name, norm, policy)
        if key == "contact_information":
            return Mark(0, len(value), Kind.person_name, "")
    return None


def redact_object(obj: Mapping[str, Any], policy: RedactionPolicy) -> RedactedObject:
    """A redacted copy of a STIX 2.1 object (JSON dict) and its marks; ``obj`` is not changed.

    Every string is redacted with :func:`redact_text` except identifiers, times and vocabulary
    (``id``, ``type``, ``spec_version``, timestamps, ``*_ref(s)``, ``hashes``, ...). A
    ``pattern`` is redacted only inside its quoted strings, so it stays a valid pattern.
    ``user-account`` logins and names, and the victim's or a person's ``identity`` name, are
    replaced whole; their ``contact_information`` is removed. Non-string values are kept.
    """
    marks: list[PathMark] = []
    redacted = _walk_object(obj, (), policy, marks)
    return RedactedObject(object=redacted, marks=tuple(marks))


def preview(obj: Mapping[str, Any], policy: RedactionPolicy) -> RedactedObject:
    """What the sender sees before sharing: the very result the send path sends.

    One function on purpose: a preview computed apart from the send could drift from it, and
    the sender would approve something other than what leaves.
    """
    return redact_object(obj, policy)
