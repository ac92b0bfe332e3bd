"""Sources: files and directories on disk, opened transparently when gzip-compressed."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.formats import DEFAULT_BATCH_SIZE, detect_format, get_format
from qorgan.telemetry.quarantine import Quarantine

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 * 1024


def expand_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named, and files under directories named (recursively, sorted, hidden skipped).

    Nothing is skipped by name: a file no format recognises is quarantined with that reason,
    so a hunt over a folder says what it did not read."""
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
                if child.is_file() and not hidden:
                    yield child
        elif path.is_file():
            yield path
        else:
            raise TelemetryError("no such file or directory", source=str(path))


def open_source(path: Path) -> IO[bytes]:
    """The file's bytes, uncompressed when it is gzip (by content, not by name)."""
    raw = path.open("rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    raw.seek(0)
    return raw


def read_file(
    path: Path,
    quarantine: Quarantine,
    *,
    format_name: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    logsource: dict[str, str] | None = None,
) -> Iterator[EventBatch]:
    """Batches of one file, its format detected unless named. Unreadable files are quarantined."""
    try:
        stream = open_source(path)
    except OSError as exc:
        quarantine.add(str(path), 0, f"io: cannot open: {exc.strerror or exc}")
        return
    with stream:
        try:
            head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(stream, "peek") else b""
        except (OSError, EOFError) as exc:
            quarantine.add(str(path), 0, f"io: cannot read: {exc}")
            return
        if format_name:
            fmt = get_format(format_name)
        else:
            try:
                fmt = detect_format(head, str(path))
            except TelemetryError as exc:
                quarantine.add(str(path), 0, f"format: {exc.message}", head[:200])
                return
        raw = getattr(stream, "fileobj", None) or stream  # gzip: the compressed file
        try:
            for batch in fmt.read(stream, str(path), quarantine, batch_size):
                if logsource:
                    batch.logsource.update(logsource)
                batch.offset = _tell(raw)
                yield batch
        except (OSError, EOFError) as exc:  # truncated gzip, disk errors
            quarantine.add(str(path), 0, f"io: read stopped: {exc}")


def _tell(raw: IO[bytes]) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return 0


def read_paths(
    paths: Iterable[Path],
    quarantine: Quarantine,
    *,
    format_name: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    logsource: dict[str, str] | None = None,
) -> Iterator[EventBatch]:
    for path in expand_paths(paths):
        yield from read_file(
            path, quarantine, format_name=format_name, batch_size=batch_size, logsource=logsource
        )
