"""Framing of log messages on a stream: syslog over TCP/TLS (RFC 6587) and RELP. Pure: bytes in,
messages out, no I/O, so a receiver feeds whatever a read returned and gets complete messages.

**Syslog over a stream** (:class:`SyslogStreamDecoder`). Each frame is detected on its own, as
rsyslog's ``imtcp`` does, so one connection may mix both framings:

* *octet counting* (RFC 6587 3.4.1, ``MSG-LEN SP SYSLOG-MSG``): a frame that starts with a count
  of 1 to 999,999,999 followed by a space holds exactly that many octets;
* *non-transparent framing* (RFC 6587 3.4.2): anything else runs to the next LF or NUL (NUL as
  rsyslog's ``AddtlFrameDelimiter="0"``), one trailing CR dropped. A frame that starts with
  digits not followed by a space (``2024-05-01 ...``), a count of 0 or a count of ten digits or
  more is such a line, its digits kept, as in rsyslog. Empty lines carry nothing and yield
  nothing.

One trailing LF of an octet-counted message is dropped, as rsyslog does on reception
(``parser.dropTrailingLFOnReception``): its own RFC 5424 templates end with one.

The ambiguity is the protocol's: a non-transparent sender whose message starts with digits and a
space (``5 errors``, no ``<PRI>``) is read as octet counted, by rsyslog and by us.

A message longer than ``max_message`` is *truncated* (its first ``max_message`` octets are a
message, the rest of its frame is discarded) or *skipped* (the whole frame is discarded), and
reported either way through ``report(reason, sample)`` so the intake can quarantine it: nothing
is dropped unsaid. Memory per decoder stays below ``max_message`` plus a few octets whatever the
sender does; a frame's content is never decoded as text here (invalid UTF-8 passes as bytes).

**RELP** (:class:`RelpDecoder`, :func:`encode_relp`): librelp's framing, ``TXNR SP COMMAND SP
DATALEN [SP DATA] LF``, and the offers of ``open`` (:func:`parse_offers`, :func:`format_offers`).
A malformed frame raises :class:`RelpError`, after which the stream cannot be trusted (the RELP
spec: the peer that detects it closes the connection).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from qorgan.telemetry.errors import TelemetryError

#: Default longest message: syslog-ng's ``log-msg-size`` default; rsyslog's is 8 KiB.
DEFAULT_MAX_MESSAGE = 64 * 1024
#: How much of a bad frame a report carries.
SAMPLE_BYTES = 512
#: The longest octet count (and RELP number): nine digits, as RELP's NUMBER.
MAX_DIGITS = 9

#: ``report(reason, sample)``: a frame could not be delivered whole.
Report = Callable[[str, bytes], None]


class Oversize(StrEnum):
    """What becomes of a message longer than the limit (always reported)."""

    truncate = "truncate"  # its first max_message octets are delivered (rsyslog's default)
    skip = "skip"  # nothing of it is delivered


# States of the stream decoder.
_START, _COUNT, _OCTETS, _LINE, _DISCARD_LINE = range(5)
#: A count's digits, one more than a count may have (then it is a line starting with digits).
_DIGITS = re.compile(rb"[0-9]{0,%d}" % (MAX_DIGITS + 1))


class SyslogStreamDecoder:
    """Incremental decoder of syslog frames on a TCP or TLS stream (see the module doc).

    ``feed(data)`` returns the messages completed by ``data``, without their framing;
    ``close()`` ends the stream (a last line without LF is a message, as rsyslog reads it; an
    octet-counted frame cut short is reported); ``abort(reason)`` reports and forgets an
    incomplete message (a connection closed by us).
    """

    __slots__ = (
        "_buf",
        "_declared",
        "_keep",
        "_max",
        "_remaining",
        "_report",
        "_state",
        "_truncate",
    )

    def __init__(
        self,
        report: Report,
        *,
        max_message: int = DEFAULT_MAX_MESSAGE,
        oversize: Oversize | str = Oversize.truncate,
    ) -> None:
        if max_message < 1:
            raise ValueError("max_message must be at least 1")
        self._max = max_message
        self._truncate = Oversize(oversize) is Oversize.truncate
        self._report = report
        self._state = _START
        self._buf = bytearray()
        self._remaining = 0  # octets of the current octet-counted frame still to come
        self._declared = 0  # its octet count
        self._keep = 0  # how many of its octets are kept

    @property
    def pending(self) -> int:
        """Octets held of an incomplete message (never more than ``max_message`` + 10)."""
        return len(self._buf)

    @property
    def idle(self) -> bool:
        """Whether the stream is between frames (nothing incomplete received)."""
        return self._state == _START

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        pos = 0
        end = len(data)
        buf = self._buf
        limit = self._max
        nul = b"\0" in data
        lines_from = 0  # where the bulk path for lines may be tried (after a failed try: past it)
        while pos < end:
            state = self._state
            if state == _START:
                first = data[pos]
                if 48 <= first <= 57:
                    moved = _octet_run(data, pos, end, limit, out)
                elif not nul and pos >= lines_from:
                    moved = _line_run(data, pos, end, limit, out)
                    lines_from = pos if moved > pos else data.rfind(b"\n", pos, end) + 1
                else:
                    moved = pos
                if moved > pos:
                    pos = moved
                    continue
                state = self._state = _COUNT if 48 <= first <= 57 else _LINE

            if state == _LINE:
                stop = _delimiter(data, pos, end, nul)
                if stop < 0:
                    self._hold_line(data, pos, end, out)
                    break
                if buf:
                    buf += data[pos:stop]
                    message = bytes(buf)
                    buf.clear()
                else:
                    message = data[pos:stop]
                pos = stop + 1
                self._state = _START
                if message.endswith(b"\r"):
                    message = message[:-1]
                if len(message) > limit:
                    self._oversized_line(message, out)
                elif message:
                    out.append(message)

            elif state == _OCTETS:
                remaining = self._remaining
                available = end - pos
                if not buf and remaining <= available and self._keep == self._declared:
                    message = data[pos : pos + remaining]  # the common case: one copy
                    if message[-1] == 10:
                        message = message[:-1]
                    if message:
                        out.append(message)
                    pos += remaining
                    self._state = _START
                    continue
                take = remaining if remaining < available else available
                room = self._keep - len(buf)
                if room > 0:
                    buf += data[pos : pos + (take if take < room else room)]
                pos += take
                self._remaining = remaining - take
                if self._remaining == 0:
                    self._end_octets(out)

            elif state == _COUNT:
                digits_end = _DIGITS.match(data, pos).end()  # type: ignore[union-attr]
                buf += data[pos:digits_end]
                pos = digits_end
                if len(buf) > MAX_DIGITS:
                    self._state = _LINE  # too long for a count: a line starting with digits
                elif pos < end:
                    if data[pos] == 32 and int(buf) > 0:
                        pos += 1
                        self._start_octets(int(buf))
                    else:
                        self._state = _LINE  # e.g. "2024-05-01 ...", "0 ...": a line

            else:  # _DISCARD_LINE: the rest of an oversized line
                stop = _delimiter(data, pos, end, nul)
                if stop < 0:
                    break
                pos = stop + 1
                self._state = _START
        return out

    def close(self) -> list[bytes]:
        """End of stream: the messages it completes, and a report of any frame cut short."""
        out: list[bytes] = []
        state = self._state
        if state in (_LINE, _COUNT):
            message = bytes(self._buf)
            if message.endswith(b"\r"):
                message = message[:-1]
            if len(message) > self._max:
                self._oversized_line(message, out)
            elif message:
                out.append(message)
        elif state == _OCTETS:
            self._report(
                f"incomplete frame at end of stream: {self._declared - self._remaining} of "
                f"{self._declared} octets received",
                bytes(self._buf[:SAMPLE_BYTES]),
            )
        self._reset()
        return out

    def abort(self, reason: str) -> None:
        """Forget an incomplete message, reporting it (e.g. a connection closed at shutdown)."""
        if self._state == _OCTETS or (self._state in (_LINE, _COUNT) and self._buf):
            self._report(
                f"{reason}: an incomplete message of {len(self._buf)} octets",
                bytes(self._buf[:SAMPLE_BYTES]),
            )
        self._reset()

    # ------------------------------------------------------------------ helpers

    def _reset(self) -> None:
        self._state = _START
        self._buf.clear()
        self._remaining = self._declared = self._keep = 0

    def _hold_line(self, data: bytes, pos: int, end: int, out: list[bytes]) -> None:
        """Keep the unterminated tail of a line, unless it is already too long."""
        buf = self._buf
        room = self._max + 1 - len(buf)  # one more octet: it may be the CR of a CR LF
        if end - pos <= room:
            buf += data[pos:end]
            return
        if room > 0:
            buf += data[pos : pos + room]
        self._oversized_line(bytes(buf[: self._max + 1]), out)
        buf.clear()
        self._state = _DISCARD_LINE

    def _oversized_line(self, message: bytes, out: list[bytes]) -> None:
        # The same words whether the line's end was in the same read or not.
        if self._truncate:
            out.append(message[: self._max])
        self._report(
            f"oversized message: a line longer than the limit of {self._max} octets: "
            + ("truncated" if self._truncate else "skipped"),
            message[:SAMPLE_BYTES],
        )

    def _start_octets(self, count: int) -> None:
        self._buf.clear()
        self._state = _OCTETS
        self._declared = self._remaining = count
        if count <= self._max:
            self._keep = count
        else:
            self._keep = self._max if self._truncate else min(SAMPLE_BYTES, self._max)

    def _end_octets(self, out: list[bytes]) -> None:
        message = bytes(self._buf)
        if self._declared > self._max:
            if self._truncate:
                out.append(message)
            self._report(
                f"oversized message: {self._declared} octets, over the limit of {self._max}: "
                + ("truncated" if self._truncate else "skipped"),
                message[:SAMPLE_BYTES],
            )
        else:
            if message.endswith(b"\n"):
                message = message[:-1]
            if message:
                out.append(message)
        self._reset()


# The bulk paths: the common cases at C speed, same results as the frame-by-frame path (the
# property tests compare them on every split of random streams).
_NEXT_LINE_STARTS_WITH_DIGIT = re.compile(rb"\n[0-9]")


def _line_run(data: bytes, pos: int, end: int, limit: int, out: list[bytes]) -> int:
    """Take every complete line from ``pos`` (not a digit) on at once, when none is special
    (starts with a digit, is too long); where the frame-by-frame path must go on (``pos`` if
    nothing was done)."""
    last = data.rfind(b"\n", pos, end)
    if last < 0:
        return pos
    region = data[pos:last]
    if _NEXT_LINE_STARTS_WITH_DIGIT.search(region):
        return pos
    lines = region.split(b"\n")
    if b"\r" in region:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if max(map(len, lines)) > limit:
        return pos
    if b"" in lines:
        lines = [line for line in lines if line]
    out += lines
    return last + 1


def _octet_run(data: bytes, pos: int, end: int, limit: int, out: list[bytes]) -> int:
    """Take consecutive complete octet-counted frames within the limit from ``pos`` on; where
    the frame-by-frame path must go on."""
    while pos < end:
        space = data.find(b" ", pos, pos + MAX_DIGITS + 1)
        if space <= pos:
            break
        count = data[pos:space]
        if not count.isdigit():
            break
        size = int(count)
        start = space + 1
        if size == 0 or size > limit or start + size > end:
            break
        message = data[start : start + size]
        if message[-1] == 10:
            message = message[:-1]
        if message:
            out.append(message)
        pos = start + size
    return pos


def _delimiter(data: bytes, pos: int, end: int, nul: bool) -> int:
    """Index of the first LF (or NUL, when ``data`` has any) at or after ``pos``, or -1."""
    lf = data.find(b"\n", pos, end)
    if nul:
        zero = data.find(b"\0", pos, lf if lf >= 0 else end)
        if zero >= 0:
            return zero
    return lf


# ---------------------------------------------------------------------------------------- RELP


class RelpError(TelemetryError):
    """A RELP frame could not be read (the connection is then closed)."""


#: librelp's default ``maxDataSize``.
DEFAULT_RELP_MAX_DATA = 128 * 1024
#: TXNR SP COMMAND SP DATALEN, then SP (data follows) or LF (no data).
_HEADER = re.compile(rb"([0-9]{1,9}) ([A-Za-z]{1,32}) ([0-9]{1,9})([ \n])")
#: What may still become a header when more octets arrive.
_HEADER_PREFIX = re.compile(rb"[0-9]{0,9}|[0-9]{1,9} (?:[A-Za-z]{0,32}|[A-Za-z]{1,32} [0-9]{0,9})")
_LONGEST_HEADER = MAX_DIGITS + 1 + 32 + 1 + MAX_DIGITS + 1
_COMMAND = re.compile(r"[A-Za-z]{1,32}")
MAX_NUMBER = 999_999_999


@dataclass(frozen=True, slots=True)
class RelpFrame:
    """One RELP frame. ``size`` is its DATALEN: larger than ``len(data)`` when the decoder kept
    only the first ``max_data`` octets of an oversized frame."""

    txnr: int
    command: str
    data: bytes = b""
    size: int = -1

    @property
    def oversized(self) -> bool:
        return self.size > len(self.data)

    def encode(self) -> bytes:
        return encode_relp(self.txnr, self.command, self.data)


def encode_relp(txnr: int, command: str, data: bytes = b"") -> bytes:
    """A frame's octets: ``TXNR SP COMMAND SP DATALEN [SP DATA] LF``."""
    if not 0 <= txnr <= MAX_NUMBER:
        raise ValueError(f"RELP transaction number out of range: {txnr}")
    if not _COMMAND.fullmatch(command):
        raise ValueError(f"RELP command must be 1 to 32 letters: {command!r}")
    if len(data) > MAX_NUMBER:
        raise ValueError("RELP data longer than 999,999,999 octets")
    if data:
        return b"%d %s %d %s\n" % (txnr, command.encode("ascii"), len(data), data)
    return b"%d %s 0\n" % (txnr, command.encode("ascii"))


class RelpDecoder:
    """Incremental RELP frame parser. ``feed(data)`` returns the frames completed by ``data``
    and raises :class:`RelpError` on a malformed one (and on every call after it).

    Data beyond ``max_data`` octets is read and discarded, the frame delivered with its first
    ``max_data`` octets and its declared ``size`` (the receiver decides: quarantine it, and
    acknowledge it, or the sender would retry it forever). Memory stays below ``max_data`` plus
    one read.
    """

    __slots__ = ("_buf", "_error", "_frame", "_max", "_remaining")

    def __init__(self, *, max_data: int = DEFAULT_RELP_MAX_DATA) -> None:
        if max_data < 1:
            raise ValueError("max_data must be at least 1")
        self._max = max_data
        self._buf = bytearray()
        self._error: RelpError | None = None
        # An oversized frame being discarded: (txnr, command, size, kept data), and the data
        # octets still to skip (then its LF).
        self._frame: tuple[int, str, int, bytes] | None = None
        self._remaining = 0

    @property
    def pending(self) -> int:
        """Octets held of an incomplete frame."""
        return len(self._buf) + (self._remaining if self._frame else 0)

    def feed(self, data: bytes) -> list[RelpFrame]:
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except RelpError as exc:
            self._error = exc
            raise

    def _feed(self, data: bytes) -> list[RelpFrame]:
        frames: list[RelpFrame] = []
        if self._frame is not None:
            data = self._skip(data, frames)
            if self._frame is not None:
                return frames
        self._parse(data, frames)
        return frames

    def _parse(self, data: bytes, frames: list[RelpFrame]) -> None:
        """Append the frames completed by ``data`` (after what the buffer holds); an oversized
        frame not complete in it is left to :meth:`_skip`."""
        buf = self._buf
        buf += data
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        try:
            while pos < end:
                match = _HEADER.match(buf, pos)
                if match is None:
                    head = bytes(buf[pos : pos + _LONGEST_HEADER])
                    if len(head) < _LONGEST_HEADER and _HEADER_PREFIX.fullmatch(head):
                        break  # incomplete header
                    raise RelpError(f"malformed RELP frame header: {_describe_header(head)}")
                txnr = int(match[1])
                command = match[2].decode("ascii")
                size = int(match[3])
                start = match.end()
                if size == 0:
                    if match[4] == b"\n":
                        frames.append(RelpFrame(txnr, command, b"", 0))
                        pos = start
                        continue
                    if start >= end:
                        break
                    if buf[start] != 10:
                        raise RelpError(
                            f"RELP frame {txnr} ({command}): DATALEN 0 but data follows"
                        )
                    frames.append(RelpFrame(txnr, command, b"", 0))
                    pos = start + 1
                    continue
                if match[4] != b" ":
                    raise RelpError(f"RELP frame {txnr} ({command}): DATALEN {size} but no data")
                if size > self._max:  # keep max_data octets, skip the rest (in place)
                    take = min(size, end - start)
                    kept = bytes(view[start : start + min(take, self._max)])
                    pos = start + take
                    if take == size and pos < end:
                        if buf[pos] != 10:
                            raise RelpError(
                                f"RELP frame {txnr} ({command}): no LF after its {size} octets "
                                "of data (wrong DATALEN?)"
                            )
                        frames.append(RelpFrame(txnr, command, kept, size))
                        pos += 1
                        continue
                    self._frame = (txnr, command, size, kept)
                    self._remaining = size - take
                    pos = end
                    break
                if start + size >= end:
                    break  # data or trailer still to come
                if buf[start + size] != 10:
                    raise RelpError(
                        f"RELP frame {txnr} ({command}): no LF after its {size} octets of data "
                        "(wrong DATALEN?)"
                    )
                frames.append(RelpFrame(txnr, command, bytes(view[start : start + size]), size))
                pos = start + size + 1
        finally:
            view.release()
        if pos:
            del buf[:pos]

    def _skip(self, data: bytes, frames: list[RelpFrame]) -> bytes:
        """Go on discarding an oversized frame's data; the octets after its trailer."""
        assert self._frame is not None
        txnr, command, size, kept = self._frame
        take = min(self._remaining, len(data))
        if len(kept) < self._max:  # then kept holds every data octet seen so far
            kept += data[: min(take, self._max - len(kept))]
            self._frame = (txnr, command, size, kept)
        self._remaining -= take
        data = data[take:]
        if self._remaining or not data:
            return b""
        if data[0] != 10:
            raise RelpError(
                f"RELP frame {txnr} ({command}): no LF after its {size} octets of data "
                "(wrong DATALEN?)"
            )
        self._frame = None
        frames.append(RelpFrame(txnr, command, kept, size))
        return data[1:]


def _describe_header(head: bytes) -> str:
    """Which part of a RELP header is wrong, for the error message."""
    text = head[:_LONGEST_HEADER].decode("ascii", "backslashreplace")
    parts = head.split(b" ", 3)
    if not re.fullmatch(rb"[0-9]{1,9}", parts[0]):
        return f"the transaction number is not 1 to 9 digits in {text!r}"
    if len(parts) < 2 or not re.fullmatch(rb"[A-Za-z]{1,32}", parts[1]):
        return f"the command is not 1 to 32 letters in {text!r}"
    return f"DATALEN is not 1 to 9 digits followed by SP or LF in {text!r}"


def parse_offers(data: bytes) -> dict[str, list[str]]:
    """The offers of an ``open`` command or its response: ``name[=value[,value...]]`` lines."""
    offers: dict[str, list[str]] = {}
    for line in data.decode("utf-8", "replace").split("\n"):
        if not line:
            continue
        name, _, values = line.partition("=")
        offers[name.strip()] = values.split(",") if values else []
    return offers


def format_offers(offers: Mapping[str, Sequence[str]]) -> bytes:
    return "\n".join(
        f"{name}={','.join(values)}" if values else name for name, values in offers.items()
    ).encode("utf-8")
