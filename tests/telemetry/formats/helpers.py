"""Helpers the format tests share: reading bytes or a corpus file, damaged-line strategies."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.formats import Format
from qorgan.telemetry.quarantine import Quarantine


def read_bytes(
    fmt: Format, data: bytes, path: str, batch_size: int = 1000
) -> tuple[list[EventBatch], list[dict[str, Any]], Quarantine]:
    """``data`` read by ``fmt`` as if from ``path``: batches, their events, the quarantine."""
    quarantine = Quarantine()
    batches = list(fmt.read(io.BytesIO(data), path, quarantine, batch_size))
    events = [e for b in batches for e in b.events]
    return batches, events, quarantine


def read_corpus(path: Path, fmt: Format) -> tuple[list[dict[str, Any]], Quarantine]:
    """The events of the file at ``path`` read by ``fmt``, and the quarantine."""
    quarantine = Quarantine()
    with path.open("rb") as stream:
        events = [e for b in fmt.read(stream, str(path), quarantine) for e in b.events]
    return events, quarantine


def record_lines(data: bytes, *, directives: bool = False) -> list[bytes]:
    """The non-blank lines of ``data``: what a line format must read or quarantine. With
    ``directives``, without the ``#`` lines such a format reads as directives."""
    lines = [line for line in data.split(b"\n") if line.strip()]
    if directives:
        return [line for line in lines if not line.startswith(b"#")]
    return lines


@st.composite
def damaged_lines(
    draw: st.DrawFn, bases: Sequence[bytes], latin1: Callable[[bytes], bytes]
) -> bytes:
    """One of ``bases``, kept, cut, with a byte changed, made Latin-1 by ``latin1``, or
    replaced by random bytes (without a newline)."""
    base = draw(st.sampled_from(bases))
    kind = draw(st.sampled_from(["good", "cut", "bytes", "flip", "latin1"]))
    if kind == "good":
        return base
    if kind == "cut":
        return base[: draw(st.integers(0, len(base)))]
    if kind == "latin1":
        return latin1(base)
    if kind == "flip":
        i = draw(st.integers(0, len(base) - 1))
        return base[:i] + bytes([draw(st.integers(0, 255))]) + base[i + 1 :]
    return draw(st.binary(max_size=80)).replace(b"\n", b"")
