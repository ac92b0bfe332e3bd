"""The text to mine templates from: the message of a log line or of a normalised event.

A template is the shape of a *message*; a line's header (date, host, process id, level) would
only add variables. Three ways to get the message:

- :func:`event_text` for an event of our formats (syslog's ``message``, an access log's
  request line with the query values masked), so detectors mine what the format parsed;
- :class:`LogFormat` for raw lines of a known layout, in the Loghub benchmark's syntax
  (``'<Date> <Time> <Pid> <Level> <Component>: <Content>'``): each ``<Field>`` is a field, the
  text between them is literal, and ``<Content>`` is the message;
- :func:`message_of` for raw lines of an unknown layout: it strips a common header (RFC 3164 /
  5424 syslog, an ISO or bracketed timestamp followed by a level and a component) and otherwise
  keeps the line whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from qorgan.detection.anomaly.drain import TemplateMiner
from qorgan.detection.anomaly.masking import WILDCARD
from qorgan.detection.errors import DetectionError


class LogFormatError(DetectionError):
    """A log format that cannot be used (no ``<Content>``, a field named twice...)."""


_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


class LogFormat:
    """A line layout in the Loghub syntax; :meth:`content` gives a line's message.

    As in the Loghub benchmark's own code, the text between the fields is a regular expression
    whose runs of spaces match any run of whitespace (so ``\\[<Pid>\\]`` matches ``[42]`` and
    ``(\\[<PID>\\])?`` an optional one). Fields match as little as they can, and the line must
    match whole; ``<Content>`` is the message.
    """

    def __init__(self, spec: str) -> None:
        names = _FIELD.findall(spec)
        if "Content" not in names:
            raise LogFormatError(f"log format {spec!r} has no <Content> field")
        if len(set(names)) != len(names):
            raise LogFormatError(f"log format {spec!r} names a field twice")
        parts: list[str] = []
        pos = 0
        for m in _FIELD.finditer(spec):
            parts.append(_SPACE_RUN.sub(r"\\s+", spec[pos : m.start()]))
            parts.append(f"(?P<{m.group(1)}>.*?)")
            pos = m.end()
        parts.append(_SPACE_RUN.sub(r"\\s+", spec[pos:]))
        try:
            self._regex = re.compile("^" + "".join(parts) + "$", re.DOTALL)
        except re.error as exc:
            raise LogFormatError(f"log format {spec!r} is not usable: {exc}") from exc
        self.spec = spec
        self.fields = names

    def parse(self, line: str) -> dict[str, str] | None:
        """The fields of ``line``, or ``None`` when it does not have this layout."""
        m = self._regex.match(line.strip())
        return m.groupdict() if m else None

    def content(self, line: str) -> str:
        """The message of ``line``; the whole line when it does not have this layout."""
        fields = self.parse(line)
        return fields["Content"] if fields is not None else line


_SPACE_RUN = re.compile(r" +")


_HEADERS = [
    # RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG
    re.compile(
        r"^(?:<\d{1,3}>)1\s+\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(?:-|(?:\[[^\]]*\])+)\s?(?P<m>.*)$"
    ),
    # RFC 3164: [<PRI>]Mmm dd hh:mm:ss host tag[pid]: MSG
    re.compile(
        r"^(?:<\d{1,3}>)?[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}\s+\S+\s+"
        r"[^\s:\[]+(?:\[\d+\])?:\s?(?P<m>.*)$"
    ),
    # ISO / numeric date and time, optional pid, a level, an optional [thread], a component:
    # "2015-10-18 18:01:47,978 INFO [main] org.x.Y: msg", "081109 203615 148 INFO dfs.X: msg"
    re.compile(
        r"^\d{2,4}-?\d{2}-?\d{2}[ T]\d{2}:?\d{2}:?\d{2}(?:[.,]\d+)?\s+(?:-\s+)?(?:\d+\s+)?"
        r"(?:TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|FATAL|CRITICAL|SEVERE)\s+"
        r"(?:\[[^\]]*\]\s+)?(?:-\s+)?(?:[\w.$@/:\[\]=-]+:\s|-\s)?(?P<m>.*)$"
    ),
    # [date] [level] msg (Apache error log, Proxifier-like "[date] program - msg")
    re.compile(r"^\[[^\]]+\]\s+(?:\[[a-z]+(?::[a-z]+)?\]\s+|\S+\s+-\s+)(?P<m>.*)$"),
]


def message_of(line: str) -> str:
    """The message of a raw line of unknown layout: a common header stripped, if any."""
    for header in _HEADERS:
        m = header.match(line)
        if m:
            return m.group("m")
    return line


def event_text(event: Mapping[str, Any], fmt: str) -> str:
    """The text to mine from ``event`` of format ``fmt`` (a format's name, as in
    :class:`~qorgan.telemetry.batch.EventBatch`)."""
    if fmt == "accesslog":
        method = event.get("cs-method")
        stem = event.get("cs-uri-stem")
        if method and stem is not None:
            query = event.get("cs-uri-query")
            target = str(stem)
            if query:
                pairs = parse_qsl(str(query), keep_blank_values=True)
                target += "?" + "&".join(f"{k}={WILDCARD}" for k, _ in pairs)
            version = event.get("cs-version")
            return " ".join(str(p) for p in (method, target, version) if p)
        return str(event.get("request") or "")
    message = event.get("message")
    if isinstance(message, str):
        return message
    line = event.get("line") or event.get("raw")
    if isinstance(line, str):
        return message_of(line)
    return " ".join(f"{k}={v}" for k, v in sorted(event.items()) if v is not None)


class LogReadError(DetectionError):
    """A log file that cannot be read (missing, a folder, no permission...)."""


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of ``path`` with their 1-based numbers, as text whatever the bytes: invalid
    UTF-8 becomes U+FFFD, as does a NUL (not text, and refused by CSV writers)."""
    try:
        f = path.open("rb")
    except OSError as exc:
        raise LogReadError(f"cannot read the log: {exc.strerror or exc}", source=str(path)) from exc
    with f:
        try:
            for number, raw in enumerate(f, start=1):
                text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                yield number, text.replace("\x00", "\ufffd")
        except OSError as exc:
            raise LogReadError(
                f"cannot read the log: {exc.strerror or exc}", source=str(path)
            ) from exc


def file_templates(
    path: Path, miner: TemplateMiner, log_format: LogFormat | None = None
) -> list[tuple[int, int, str]]:
    """Mine every line of ``path`` (its message: by ``log_format``, else :func:`message_of`)
    and give ``(line number, template id, template)`` per line, as the templates stand after
    the whole file (a template that generalised later in the file shows its final text)."""
    message = log_format.content if log_format is not None else message_of
    mined = [(number, miner.add(message(line)).template_id) for number, line in read_lines(path)]
    final = miner.templates()
    rows = []
    for number, tid in mined:
        current = miner.canonical(tid)
        rows.append((number, current, final.get(current, "")))
    return rows
