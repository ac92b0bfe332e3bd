"""Hostile input cannot take a reader's memory: decompression bombs, oversized lines, JSON
documents and array elements are quarantined with the reason, and reading goes on.

Memory is measured with tracemalloc (the peak of what Python allocated while reading), so each
test shows the reader never held the oversized record, not merely that it refused it.
"""

from __future__ import annotations

import gzip
import random
import tracemalloc
import zlib
from pathlib import Path

import orjson
import pytest

from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.options import MiB, ReadOptions
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file, read_paths

SMALL = ReadOptions(max_record_bytes=1 * MiB)
#: 16 MiB that compress as poorly as real logs (so gzip copies are no bombs).
FILLER = random.Random(1).randbytes(8 * MiB).hex().encode()


def measured(read: object) -> tuple[list[EventBatch], int]:
    """The batches of ``read`` (an iterator) and the peak of Python's allocations meanwhile."""
    tracemalloc.start()
    try:
        batches = list(read)  # type: ignore[call-overload]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return batches, peak


def gzip_of(parts: list[bytes], repeat: int) -> bytes:
    """A gzip file of ``parts[0]``, ``parts[1]`` repeated ``repeat`` times, then ``parts[2]``,
    compressed piece by piece (never built whole)."""
    head, body, tail = parts
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    out = [packer.compress(head)]
    chunk = body * max(1, MiB // len(body))
    for _ in range(max(1, repeat * len(body) // len(chunk))):
        out.append(packer.compress(chunk))
    out += [packer.compress(tail), packer.flush()]
    return b"".join(out)


def events(batches: list[EventBatch]) -> list[dict]:
    return [e for b in batches for e in b.events]


def json_line(n: int) -> bytes:
    return orjson.dumps({"n": n, "host": "web-1", "msg": "ok"}) + b"\n"


def test_a_decompression_bomb_is_stopped_and_the_other_files_are_read(tmp_path: Path) -> None:
    """The review's case, scaled down: a small gzip that inflates to 256 MiB (one line of
    zeros after a good line) is stopped at the ratio limit, holding little; the good line
    before it and the next file are read."""
    bomb = tmp_path / "a-bomb.json.gz"
    bomb.write_bytes(gzip_of([json_line(1), b"0" * 4096, b"\n"], repeat=256 * MiB // 4096))
    assert bomb.stat().st_size < 600 * 1024
    good = tmp_path / "b-good.json"
    good.write_bytes(b"".join(json_line(n) for n in range(1, 11)))
    quarantine = Quarantine()

    batches, peak = measured(read_paths([tmp_path], quarantine))

    per_file = {
        p: [e["n"] for b in batches if b.path == p for e in b.events]
        for p in map(str, (bomb, good))
    }
    assert per_file == {str(bomb): [1], str(good): list(range(1, 11))}
    reasons = [(Path(q.path).name, q.record, q.reason) for q in quarantine.records]
    assert (
        "a-bomb.json.gz",
        0,
        "gzip: inflates more than 100 times its compressed size (a decompression bomb?); "
        "the rest of the file is not read",
    ) in reasons
    assert peak < 40 * MiB  # the reader held ~2 MiB windows, never the 256 MiB inflated


def test_a_gzip_file_past_the_size_limit_is_cut_with_the_reason(tmp_path: Path) -> None:
    """An ordinary compression ratio, but more uncompressed data than allowed: what came
    before the limit is read, the rest is reported."""
    lines = [json_line(n) for n in range(1, 200_001)]
    path = tmp_path / "big.json.gz"
    path.write_bytes(gzip.compress(b"".join(lines), compresslevel=1))
    quarantine = Quarantine()
    options = ReadOptions(max_decompressed_bytes=2 * MiB)

    read = events(list(read_file(path, quarantine, options=options)))

    assert 0 < len(read) < len(lines)
    assert [e["n"] for e in read] == list(range(1, len(read) + 1))
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (0, "gzip: inflates to more than 2 MiB; the rest of the file is not read")
    ]


LINE_FORMATS = {
    "syslog": (
        b"Jun 14 15:16:01 combo sshd[1]: Accepted password for ana from 10.0.0.1 port 2 ssh2\n",
        b"Jun 14 15:16:02 combo sshd[1]: " + FILLER + b"\n",
    ),
    "json": (json_line(1), b'{"msg": "' + FILLER + b'"}\n'),
    "zeek": (
        b'{"ts": 1700000000.0, "uid": "C1", "id.orig_h": "10.0.0.1", "_path": "conn"}\n',
        b'{"ts": 1700000000.0, "uid": "' + FILLER + b'"}\n',
    ),
    "cef": (
        b"CEF:0|Vendor|Product|1.0|100|Login|5|src=10.0.0.1 suser=ana\n",
        b"CEF:0|Vendor|Product|1.0|100|Login|5|msg=" + FILLER + b"\n",
    ),
    "accesslog": (
        b'10.0.0.1 - - [14/Jun/2024:15:16:01 +0500] "GET / HTTP/1.1" 200 5 "-" "curl"\n',
        b'10.0.0.1 - - [14/Jun/2024:15:16:01 +0500] "GET /' + FILLER + b'" 200 5\n',
    ),
}


@pytest.mark.parametrize("name", sorted(LINE_FORMATS))
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_an_oversized_line_is_quarantined_and_reading_resumes(
    tmp_path: Path, name: str, gzipped: bool
) -> None:
    good, huge = LINE_FORMATS[name]
    data = good + huge + good
    path = tmp_path / ("log.gz" if gzipped else "log")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    quarantine = Quarantine()

    batches, peak = measured(read_file(path, quarantine, format_name=name, options=SMALL))

    assert [r for b in batches for r in b.records] == [1, 3]
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (2, f"{name}: line longer than 1 MiB")
    ]
    assert quarantine.records[0].excerpt.startswith(huge[:20].decode())
    assert peak < 8 * MiB  # a few pieces of 1 MiB, never the 16 MiB line whole


def test_an_oversized_first_json_line_is_quarantined_too(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b'\xef\xbb\xbf{"msg": "' + FILLER + b'"}\n' + json_line(2))
    quarantine = Quarantine()
    read = events(list(read_file(path, quarantine, options=SMALL)))
    assert [e["n"] for e in read] == [2]
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (1, "json: line longer than 1 MiB")
    ]


def nested_monster() -> dict:
    """An element that is hard to skip: brackets and escaped quotes inside its strings,
    nesting, and more than 1 MiB in all."""
    tricky = 'x]}\\"{[' * 1000
    return {"Event": {"System": {"Computer": "evil"}}, "junk": [[tricky] * 200, {"k": tricky}]}


@pytest.mark.parametrize("layout", ["array", "array-one-line", "pretty", "gzip-array"])
def test_an_oversized_json_document_is_skipped_and_reading_resumes(
    tmp_path: Path, layout: str
) -> None:
    docs = [
        {"n": 1, "host": "a"},
        nested_monster(),
        {"n": 3, "host": "c", "msg": "after ]} the monster"},
        {"n": 4, "blob": "B" * (2 * MiB)},  # a long plain string, at the end
        {"n": 5},
    ]
    if layout == "pretty":
        data = b"\n".join(orjson.dumps(d, option=orjson.OPT_INDENT_2) for d in docs) + b"\n"
    elif layout == "array-one-line":
        data = orjson.dumps(docs)
    else:
        data = orjson.dumps(docs, option=orjson.OPT_INDENT_2)
    path = tmp_path / "events.json"
    path.write_bytes(gzip.compress(data) if layout.startswith("gzip") else data)
    quarantine = Quarantine()

    batches, peak = measured(read_file(path, quarantine, options=SMALL))

    assert [e.get("n") for e in events(batches)] == [1, 3, 5]
    assert [r for b in batches for r in b.records] == [1, 3, 5]
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (2, "json: document 2 longer than 1 MiB"),
        (4, "json: document 4 longer than 1 MiB"),
    ]
    assert peak < 2 * len(data)  # the old reader held the whole text and its objects


def test_an_oversized_json_document_cut_short_is_reported_once(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b'[{"n": 1}, {"n": 2, "blob": "' + b"B" * (3 * MiB))
    quarantine = Quarantine()
    read = events(list(read_file(path, quarantine, options=SMALL)))
    assert [e["n"] for e in read] == [1]
    assert [(q.record, q.reason) for q in quarantine.records] == [
        (2, "json: document 2 longer than 1 MiB, and cut short")
    ]


def test_json_documents_straddling_chunks_are_read_exactly(tmp_path: Path) -> None:
    """Many documents across the reader's 1 MiB chunks, numbers at chunk ends included: each
    is read once, in order, with its position."""
    docs = [{"n": n, "pad": "p" * (n % 97), "v": n * 1.5} for n in range(1, 40_001)]
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps(docs))
    quarantine = Quarantine()
    read = events(list(read_file(path, quarantine)))
    assert quarantine.count == 0
    assert [e["n"] for e in read] == list(range(1, 40_001))
    assert read[-1]["v"] == 60_000.0
