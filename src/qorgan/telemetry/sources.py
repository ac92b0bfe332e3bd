"""Sources: files and directories on disk, opened transparently when gzip-compressed.

A gzip file is inflated as it is read, within the limits of
:class:`~qorgan.telemetry.options.ReadOptions`: past the decompressed size or the compression
ratio allowed, the file ends there for its format (what was read is kept), the reason is
quarantined, and the other files are read. With a ``root`` folder, nothing outside it is
read: a symbolic link found walking a directory (or named, or swapped in before the file is
opened) that leads out of it is quarantined, never followed.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.errors import TelemetryError
from qorgan.telemetry.formats import DEFAULT_BATCH_SIZE, detect_format, get_format
from qorgan.telemetry.formats.base import Span
from qorgan.telemetry.formats.json import JsonFormat
from qorgan.telemetry.options import DEFAULT_OPTIONS, RATIO_GRACE_BYTES, ReadOptions, size_text
from qorgan.telemetry.quarantine import Quarantine

GZIP_MAGIC = b"\x1f\x8b"
SNIFF_BYTES = 64 * 1024
#: Uncompressed bytes handed to a format at a time from a gzip file.
INFLATE_BUFFER = 1 << 20
OUTSIDE = "a symbolic link out of the folder hunted; not read"


class DecompressionLimit(TelemetryError):
    """A gzip file inflates past a limit of its :class:`ReadOptions`."""


class Inflated(io.RawIOBase):
    """The uncompressed bytes of a gzip file, ending early (``error`` says why) past
    ``max_decompressed_bytes`` or, once more than :data:`RATIO_GRACE_BYTES` are out, when
    they outgrow the compressed bytes read by more than ``max_compression_ratio``. Ending
    (after the last whole line) rather than raising lets a format hand on the events it has
    read; a seek past the limit raises :class:`DecompressionLimit`."""

    def __init__(self, compressed: IO[bytes], options: ReadOptions) -> None:
        super().__init__()
        self.compressed = compressed
        self._gzip = gzip.GzipFile(fileobj=compressed, mode="rb")
        self._max = options.max_decompressed_bytes
        self._ratio = options.max_compression_ratio
        self._pos = 0
        #: Why reading stopped, once a limit is passed.
        self.error: str | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.error is not None:
            return 0
        count = self._gzip.readinto(buffer)
        self._pos += count
        self.error = self._exceeded()
        if self.error is not None:
            return bytes(memoryview(buffer)[:count]).rfind(b"\n") + 1
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET and offset > self._max:
            self.error = f"inflates to more than {size_text(self._max)}"
        else:
            self._pos = self._gzip.seek(offset, whence)
            self.error = self.error or self._exceeded()
        if self.error is not None:
            raise DecompressionLimit(self.error)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._gzip.close()
            self.compressed.close()
        super().close()

    def _exceeded(self) -> str | None:
        if self._pos > self._max:
            return f"inflates to more than {size_text(self._max)}"
        if self._pos > RATIO_GRACE_BYTES and self._pos > self._ratio * max(
            self.compressed.tell(), 1
        ):
            return (
                f"inflates more than {self._ratio:g} times its compressed size "
                "(a decompression bomb?)"
            )
        return None


def _inside(path: Path, base: Path) -> bool:
    try:
        path.resolve().relative_to(base)
    except (ValueError, OSError, RuntimeError):  # outside, unreadable, or a link loop
        return False
    return True


def expand_paths(
    paths: Iterable[Path],
    *,
    root: Path | None = None,
    refused: Callable[[Path, str], None] | None = None,
) -> Iterator[Path]:
    """Files named, and files under directories named (recursively, sorted, hidden skipped).

    Nothing is skipped by name: a file no format recognises is quarantined with that reason,
    so a hunt over a folder says what it did not read. Links to folders found walking one are
    not followed, and ``refused`` is told so. With ``root``, a path whose real location is
    outside ``root`` (a symbolic link out of it, named or found walking a folder) is not
    yielded either; ``refused`` is told of it with the reason."""
    base = root.resolve() if root is not None else None

    def refuse(path: Path, why: str) -> None:
        if refused is not None:
            refused(path, why)

    for path in paths:
        if base is not None and not _inside(path, base):
            refuse(path, OUTSIDE)
            continue
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if any(part.startswith(".") for part in child.relative_to(path).parts):
                    continue
                if child.is_symlink():
                    if base is not None and not _inside(child, base):
                        refuse(child, OUTSIDE)
                        continue
                    if child.is_dir():
                        refuse(child, "a symbolic link to a folder; not followed")
                        continue
                if child.is_file():
                    yield child
        elif path.is_file():
            yield path
        else:
            raise TelemetryError("no such file or directory", source=str(path))


def open_source(path: Path, options: ReadOptions = DEFAULT_OPTIONS) -> IO[bytes]:
    """The file's bytes, uncompressed (within ``options``' limits) when it is gzip, by
    content, not by name."""
    raw = path.open("rb")
    try:
        magic = raw.read(2)
        raw.seek(0)
    except OSError:
        raw.close()
        raise
    if magic == GZIP_MAGIC:
        return io.BufferedReader(Inflated(raw, options), INFLATE_BUFFER)
    return raw


def _compressed(stream: IO[bytes]) -> IO[bytes]:
    """The file as stored under ``stream``: for progress, in bytes of the file on disk."""
    inner = getattr(stream, "raw", None)
    return inner.compressed if isinstance(inner, Inflated) else stream


def _opened_inside(stream: IO[bytes], path: Path, base: Path) -> bool:
    """Whether the file actually opened is inside ``base`` (on Linux, asked of the open file,
    so a link swapped in after the folder was walked is caught too)."""
    try:
        real = Path(os.readlink(f"/proc/self/fd/{_compressed(stream).fileno()}"))
    except (OSError, ValueError, io.UnsupportedOperation):
        return _inside(path, base)
    return real == base or base in real.parents


def read_file(
    path: Path,
    quarantine: Quarantine,
    *,
    format_name: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    logsource: dict[str, str] | None = None,
    options: ReadOptions = DEFAULT_OPTIONS,
    root: Path | None = None,
    span: Span | None = None,
) -> Iterator[EventBatch]:
    """Batches of one file, its format detected unless named. Unreadable files are
    quarantined, and so is a file outside ``root`` when one is given. With ``span`` (one of
    :func:`spans`), only the lines that start in it."""
    try:
        stream = open_source(path, options)
    except OSError as exc:
        quarantine.add(str(path), 0, f"io: cannot open: {exc.strerror or exc}")
        return
    with stream:
        if root is not None and not _opened_inside(stream, path, root.resolve()):
            quarantine.add(str(path), 0, f"io: {OUTSIDE}")
            return
        inflated = getattr(stream, "raw", None)
        try:
            head = stream.peek(SNIFF_BYTES)[:SNIFF_BYTES] if hasattr(stream, "peek") else b""
        except (OSError, EOFError) as exc:
            quarantine.add(str(path), 0, f"io: cannot read: {exc}")
            return
        fmt_options = _format_options(options)
        if format_name:
            fmt = get_format(format_name, **fmt_options)
        else:
            try:
                fmt = detect_format(head, str(path), **fmt_options)
            except TelemetryError as exc:
                quarantine.add(str(path), 0, f"format: {exc.message}", head[:200])
                return
        compressed = _compressed(stream)
        spanned = {} if span is None else {"span": span}
        try:
            for batch in fmt.read(stream, str(path), quarantine, batch_size, **spanned):
                if logsource:
                    batch.logsource.update(logsource)
                batch.offset = _tell(compressed)
                yield batch
        except DecompressionLimit:
            pass  # a seek past the limit: reported below
        except (OSError, EOFError) as exc:  # truncated gzip, disk errors
            quarantine.add(str(path), 0, f"io: read stopped: {exc}")
        if isinstance(inflated, Inflated) and inflated.error is not None:
            quarantine.add(
                str(path), 0, f"gzip: {inflated.error}; the rest of the file is not read"
            )


def spans(
    path: Path, options: ReadOptions = DEFAULT_OPTIONS, format_name: str | None = None
) -> list[Span] | None:
    """The :class:`Span` s a hunt's workers may read ``path`` in, or ``None`` when it is read
    whole: it is compressed, not JSON lines, no larger than one span, or cannot be read (its
    reading reports why)."""
    try:
        size = path.stat().st_size
        every = options.span_bytes
        if size <= every:
            return None
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
            if head[:2] == GZIP_MAGIC:
                return None
            fmt_options = _format_options(options)
            if format_name:
                fmt = get_format(format_name, **fmt_options)
            else:
                fmt = detect_format(head, str(path), **fmt_options)
            if not isinstance(fmt, JsonFormat):
                return None
            stream.seek(0)
            if not fmt.in_lines(stream.readline(options.max_record_bytes + 1)):
                return None
    except (OSError, TelemetryError):
        return None
    out = [Span(start, start + every) for start in range(0, size, every)]
    out[-1].end = 1 << 62  # to the end, should the file have grown
    return out


def _format_options(options: ReadOptions) -> dict[str, Any]:
    return {
        "tz": options.tz,
        "max_record_bytes": options.max_record_bytes,
        "span_bytes": options.span_bytes,
    }


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
    options: ReadOptions = DEFAULT_OPTIONS,
    root: Path | None = None,
) -> Iterator[EventBatch]:
    """Batches of every file of ``paths`` (see :func:`expand_paths`), nothing outside
    ``root`` when it is given."""

    def refused(path: Path, why: str) -> None:
        quarantine.add(str(path), 0, f"io: {why}")

    for path in expand_paths(paths, root=root, refused=refused):
        yield from read_file(
            path,
            quarantine,
            format_name=format_name,
            batch_size=batch_size,
            logsource=logsource,
            options=options,
            root=root,
        )
