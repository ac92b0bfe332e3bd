"""Masking of the variable parts of a log message before template mining.

A template miner groups lines by their constant words; values that change from line to line
(numbers, addresses, identifiers, paths, times) would split one template into thousands. They
are replaced by ``<*>`` before mining, by general rules that hold for any log, not by patterns
picked for one data set.

What counts as variable, and the neighbours that do not:

- numbers: decimal, signed, with a fraction or exponent, hexadecimal (``0x1f``), and with a
  unit glued on (``12ms``, ``3KB``, ``50%``). A digit glued to letters *inside a word* is part
  of a name and stays (``sshd2``, ``log4j``, ``ext3``, ``J12``): program and device names are
  constant words. A ratio ``3/4`` is two numbers (``<*>/<*>``), not a path.
- IPv4 addresses (exactly four octets) and IPv6 addresses, with an optional ``:port``
  (``<*>:<*>``: the shape "address and port" is kept, as Loghub's templates do). A version
  string such as ``1.2.3`` is not an address; it is a dotted number and is masked as one,
  unless glued to a word (``OpenSSH_7.4`` is an identifier, ``HTTP/1.1`` keeps ``HTTP/``).
- identifiers: UUIDs, HDFS block ids (``blk_-123``), hashes and other long hex strings, e-mail
  addresses, host names (with a digit, or a known top-level domain), and words that join
  letters and digits with separators (``appattempt_1445_0020``, ``R02-M1-N0``); a word that is
  a name and one number keeps the name (``node-<*>``, ``core.<*>``).
- paths (``/var/log/x``, ``C:\\Windows\\x``) and URLs (``https://...``), whole.
- dates and times inside messages (``2005-06-03``, ``15:42:50.675``, ``2005-06-03T15:42:50Z``).

The rules run in that order of precedence on the whole message (an address is not left to be
cut into numbers), each match replaced by :data:`WILDCARD`, and runs of wildcards glued by
nothing collapse to one.
"""

from __future__ import annotations

import re
from functools import lru_cache

#: What replaces a variable part, as in the Loghub templates and Drain.
WILDCARD = "<*>"

#: Characters that belong to a word for the purpose of boundaries: a match may not begin right
#: after one nor end right before one, so masks never cut a word in two.
_W = r"A-Za-z0-9_"

_UNITS = (
    r"(?:[kKmMgGtTpP]i?[bB](?:ytes?)?|[bB]ytes?|[bB]|bits?|bps|[kKmMgG]bps"
    r"|ns|us|µs|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hrs?|hours?|d|days?|%|x)"
)

#: Units written after a space that make one value with their number.
_SPACED_UNITS = r"(?:[KMGTP]i?B|kB|ms|us|µs|ns|sec|secs)"

#: Generic top-level domains that end a host name (two-letter country codes need three labels,
#: so ``setup.py`` stays a file name).
_TLDS = "com|net|org|edu|gov|mil|int|info|biz|io|local|localdomain|internal|lan|arpa|home"

_RULES: list[tuple[str, str]] = [
    # URLs: a scheme, then anything up to a space or a closing bracket / quote.
    ("url", r"\b[A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s\"'<>\]\)]+"),
    # e-mail addresses.
    ("email", rf"(?<![{_W}.+-])[{_W}.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    # UUIDs.
    (
        "uuid",
        r"(?<![0-9A-Fa-f-])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}"
        r"-[0-9A-Fa-f]{12}(?![0-9A-Fa-f-])",
    ),
    # ISO dates with an optional time and zone; then clock times on their own.
    (
        "datetime",
        rf"(?<![{_W}.:-])\d{{4}}[-/.]\d{{2}}[-/.]\d{{2}}"
        r"(?:[T _-]?\d{2}[:.]\d{2}(?:[:.]\d{2})?(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
        rf"(?![{_W}])",
    ),
    # Dates with month names: "Fri Jul  1 07:57:30 2005", "Jul 1 07:57:30", "10/Oct/2000:13:55:36".
    (
        "mdate",
        r"\b(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,?\s+)?"
        r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2},?"
        r"(?:\s+\d{4})?\s+\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:\s+\d{4}\b)?"
        r"|\b\d{1,2}/(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)/\d{4}"
        r"(?::\d{2}:\d{2}:\d{2})?",
    ),
    (
        "time",
        rf"(?<![{_W}.:-])\d{{1,2}}:\d{{2}}:\d{{2}}(?:[.,]\d+)?(?:Z|[+-]\d{{2}}:?\d{{2}})?"
        rf"(?![{_W}:])",
    ),
    # Host names that hold a digit: 5.36.59.76.dynamic-dsl.example.net, ip-10-0-0-1.ec2.internal
    # (dotted, ending in a top-level label of letters), with an optional port.
    (
        "host",
        rf"(?<![{_W}.:/-])(?=[A-Za-z0-9.-]*\d)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{{2,}}"
        rf"(?::\d{{1,5}})?(?![{_W}-]|\.\w)",
    ),
    # Host names of letters only, known by their top-level label: ns.example.com, a.b.kz.
    (
        "domain",
        rf"(?<![{_W}.:/@-])(?:[A-Za-z0-9-]+\.)+(?:{_TLDS})(?::\d{{1,5}})?(?![{_W}-]|\.\w)"
        rf"|(?<![{_W}.:/@-])(?:[A-Za-z0-9-]+\.){{2,}}[a-z]{{2}}(?::\d{{1,5}})?(?![{_W}-]|\.\w)",
    ),
    # IPv6 (with at least two colons and a hex group), optionally [addr]:port.
    (
        "ipv6",
        r"(?<![\w:.])(?:(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}"
        r"|(?:[0-9A-Fa-f]{1,4}:){1,7}:(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?"
        r"|::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?)"
        r"(?:%\w+)?(?![\w:.])",
    ),
    # IPv4 with an optional port; exactly four octets, so 1.2.3 is not one.
    (
        "ipv4",
        rf"(?<![{_W}.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){{3}}(?:25[0-5]|2[0-4]\d|1?\d?\d)"
        rf"(?::\d{{1,5}})?(?![{_W}]|\.\d)",
    ),
    # HDFS block ids and other prefix_number identifiers.
    ("block", r"\bblk_-?\d+\b"),
    # Windows paths and Unix paths (at least one slash-separated part after the first slash,
    # or a single absolute component that contains a dot, a dash or an underscore).
    ("winpath", r"(?<![\w])[A-Za-z]:\\[^\s\"'<>|]*"),
    (
        "path",
        r"(?<![\w.:/~-])(?:~|\.{1,2})?/(?:[\w.@%+~,=-]+/)+[\w.@%+~,=-]*"
        r"|(?<![\w.:/~-])/[\w@%+~-]*[._-][\w.@%+~-]*(?![\w/])",
    ),
    # Hex: 0x-prefixed, or a long run of hex digits holding at least one digit (hashes, ids).
    ("hex", rf"(?<![{_W}])0[xX][0-9A-Fa-f]+(?![{_W}])"),
    ("hash", rf"(?<![{_W}-])(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{{8,}}(?![{_W}])"),
    # Words that join letters and digits through separators: node-246, R02-M1-N0-C:J12-U11,
    # appattempt_1445_0020, host-10.example.com: a letter somewhere, and a digit in a part
    # after a separator (jk2_init, a function's name, stays).
    (
        "ident",
        rf"(?<![{_W}.:-])(?=[\w.:-]*[A-Za-z])"
        r"[A-Za-z0-9]+(?:[_.:-]+[A-Za-z0-9]+)*[_.:-]+[A-Za-z]*\d[A-Za-z0-9]*"
        r"(?:[_.:-]+[A-Za-z0-9]+)*(?![\w.:-]*\w)",
    ),
    # Numbers, with an optional bound (<1) and an optional unit glued on or, for the
    # abbreviated units of size and time, after a space (1.16 KB, 20 ms); not inside a word
    # (sshd2 stays). Spelled-out units (19 seconds, 1000 MILLISECONDS) stay words.
    (
        "number",
        rf"(?<![{_W}])(?:[<>]=?)?[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"
        rf"(?:{_UNITS}|\x20{_SPACED_UNITS})?(?![{_W}])",
    ),
]

_MASK = re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in _RULES))
_RUNS = re.compile(r"(?:<\*>)+")


_PORT = re.compile(r":\d{1,5}$")
_NAMED_NUMBER = re.compile(r"([A-Za-z]+[_.:-]+?)-?\d+")


def _replace(m: re.Match[str]) -> str:
    """``<*>`` for a match; an address keeps the shape ``<*>:<*>`` of its port, and a word
    that is a name and one number (``node-246``, ``core.1234``) keeps its name."""
    kind, text = m.lastgroup, m.group()
    if kind in ("ipv4", "host", "domain", "ident") and _PORT.search(text):
        return f"{WILDCARD}:{WILDCARD}"
    if kind == "ident":
        named = _NAMED_NUMBER.fullmatch(text)
        if named:
            return named.group(1) + WILDCARD
    return WILDCARD


#: A request line at the start of the text: its target is masked part by part, not whole.
_REQUEST = re.compile(
    r"(?P<method>GET|POST|PUT|DELETE|HEAD|OPTIONS|PATCH|CONNECT|TRACE|PROPFIND)\x20"
    r"(?P<target>/\S*)(?P<rest>.*)",
    re.DOTALL,
)
_QUERY_VALUE = re.compile(r"=[^&;#]*")


def _target(target: str) -> str:
    """A request target with each path segment masked alone and every query value masked:
    ``/api/users/42/profile?q=x`` is ``/api/users/<*>/profile?q=<*>``."""
    path, sep, query = target.partition("?")
    segments = "/".join(_MASK.sub(_replace, segment) for segment in path.split("/"))
    return segments + sep + _QUERY_VALUE.sub("=" + WILDCARD, query)


def mask(text: str) -> str:
    """``text`` with every variable part replaced by ``<*>``.

    A text that starts with an HTTP request line (``GET /path?query``, as
    :func:`~qorgan.detection.anomaly.logtext.event_text` gives for web logs) keeps its path:
    on a web server the path is what was asked for, so each segment is masked alone.
    """
    request = _REQUEST.match(text)
    if request:
        masked = (
            f"{request['method']} {_target(request['target'])}"
            f"{_MASK.sub(_replace, request['rest'])}"
        )
    else:
        masked = _MASK.sub(_replace, text)
    return _RUNS.sub(WILDCARD, masked)


#: What a word needs for a rule to touch it: a digit, or a character of an address, a path,
#: a host, an e-mail, an id or a wildcard. Only a rule for dates crosses spaces starting from
#: letters (``Jul  1 07:57:30``), so words starting like a day or month name are never plain;
#: a unit after a space (``20 ms``) joins the number before it.
_MASKABLE = re.compile(
    r"[\d./:@\\<-]|\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
)
_UNIT_START = re.compile(rf"{_SPACED_UNITS}")
_WORD = re.compile(r"\S+")


def tokens(text: str) -> list[str]:
    """The words of ``text`` after masking: split on whitespace.

    The same as ``mask(text).split()``, cheaper: plain words (no digit, none of the
    characters a rule needs) cannot be part of a match, so only the runs of other words go
    through the rules, each run as it stands in ``text`` (its spaces kept)."""
    if _REQUEST.match(text):
        return mask(text).split()
    out: list[str] = []
    start = end = -1  # the run of maskable words being gathered
    for word in _WORD.finditer(text):
        token = word.group()
        if _MASKABLE.search(token) is None and not (start >= 0 and _UNIT_START.match(token)):
            if start >= 0:
                out.extend(_mask_run(text[start:end]))
                start = -1
            out.append(token)
            continue
        if start < 0:
            start = word.start()
        end = word.end()
    if start >= 0:
        out.extend(_mask_run(text[start:end]))
    return out


def _mask_run(run: str) -> tuple[str, ...]:
    """The masked words of a run of words; one plain number (most runs, and all different) is
    one ``<*>`` without the rules."""
    if run.isascii() and run.isdigit():
        return _ONE_WILDCARD
    return _masked_run(run)


_ONE_WILDCARD = (WILDCARD,)


@lru_cache(maxsize=8192)
def _masked_run(run: str) -> tuple[str, ...]:
    """The masked words of a run of words (remembered: many recur, ``(uid=0)``, ``port``...)."""
    return tuple(_RUNS.sub(WILDCARD, _MASK.sub(_replace, run)).split())
