"""How sources are read: the zone of times written without one, and the limits that keep a
hostile or broken file from taking a reader's memory or time.

A record (a line, a JSON document or array element) longer than ``max_record_bytes`` is
quarantined without ever being held whole; a gzip file is read only up to
``max_decompressed_bytes`` of uncompressed data, and only while it inflates at most
``max_compression_ratio`` times its compressed size (judged once more than
:data:`RATIO_GRACE_BYTES` are out, so a small file of one repeated line is not refused). Logs
compress about 5-20 times; a decompression bomb about 1,000 times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, tzinfo

MiB = 1 << 20
KiB = 1 << 10

DEFAULT_MAX_RECORD_BYTES = 4 * MiB
DEFAULT_MAX_DECOMPRESSED_BYTES = 8192 * MiB
DEFAULT_MAX_COMPRESSION_RATIO = 100.0
#: Bytes of a file of lines that one worker of a hunt reads at a time (a span).
DEFAULT_SPAN_BYTES = 64 * MiB
#: Uncompressed output before the compression ratio is judged.
RATIO_GRACE_BYTES = 16 * MiB


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Options for reading sources; the defaults suit a hunt on one machine."""

    #: The zone of times written without one (RFC 3164 syslog, Apache error logs).
    tz: tzinfo = UTC
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
    max_compression_ratio: float = DEFAULT_MAX_COMPRESSION_RATIO
    #: A file of JSON lines is read in spans of this many bytes, and its batches end at each
    #: span's end however it is read, so that hunts split it across workers (tests shrink it).
    span_bytes: int = DEFAULT_SPAN_BYTES

    def __post_init__(self) -> None:
        if self.max_record_bytes < 1 or self.max_decompressed_bytes < 1 or self.span_bytes < 1:
            raise ValueError("read limits must be positive")
        if self.max_compression_ratio < 1:
            raise ValueError("the compression ratio limit must be at least 1")


DEFAULT_OPTIONS = ReadOptions()


def size_text(size: int) -> str:
    """``4 MiB``, ``512 KiB`` or ``100 bytes``: a limit as people write it."""
    if size >= MiB and size % MiB == 0:
        return f"{size // MiB} MiB"
    if size >= KiB and size % KiB == 0:
        return f"{size // KiB} KiB"
    return f"{size} bytes"
