"""Robustness of the Windows readers (EVTX and JSON) against truncated and corrupted input.

Files are written to ``tmp_path`` and read with :func:`qorgan.telemetry.sources.read_file` /
``read_paths``. The properties: no exception escapes; every non-empty line of a JSON-lines file
is either an event or a quarantine entry; a corrupted EVTX file yields events or quarantine
entries; every quarantine entry names the file, a record (or line) and a reason.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qorgan.detection.engine import Engine
from qorgan.detection.loader import compile_texts
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file, read_paths

FUZZ = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Small EVTX samples of the shared corpus: one chunk, and several chunks.
EVTX_ONE_CHUNK = "evtx-attack-samples/Defense Evasion/DE_104_system_log_cleared.evtx"
EVTX_MANY_CHUNKS = "evtx-attack-samples/Defense Evasion/DE_1102_security_log_cleared.evtx"
EVTX_CHUNK = 65536
EVTX_HEADER = 4096


def windows_doc(i: int) -> dict[str, Any]:
    """A record in the ``evtx`` parser's JSON shape."""
    return {
        "Event": {
            "System": {
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": f"host{i}",
                "EventRecordID": i,
                "TimeCreated": {"#attributes": {"SystemTime": "2024-01-01T00:00:00Z"}},
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            },
            "EventData": {"Image": f"C:\\Windows\\x{i}.exe", "CommandLine": f"x{i}.exe /q Әә"},
        }
    }


def json_lines(n: int) -> list[bytes]:
    return [orjson.dumps(windows_doc(i)) for i in range(1, n + 1)]


def read(path: Path, **kwargs: Any) -> tuple[list[EventBatch], Quarantine]:
    quarantine = Quarantine()
    batches = list(read_file(path, quarantine, **kwargs))
    return batches, quarantine


def events_of(batches: list[EventBatch]) -> list[dict[str, Any]]:
    return [e for b in batches for e in b.events]


def records_of(batches: list[EventBatch]) -> list[int]:
    return [r for b in batches for r in b.records]


def assert_well_formed(quarantine: Quarantine, path: Path) -> None:
    assert quarantine.count == len(quarantine.records)
    for item in quarantine.records:
        assert item.path == str(path)
        assert isinstance(item.record, int)
        assert item.record >= 0
        assert item.reason
        assert ":" in item.reason  # "<kind>: <detail>"
        assert isinstance(item.excerpt, str)


def nonempty_lines(data: bytes) -> list[int]:
    """1-based numbers of the lines that are not blank (lines split on LF, as files are read)."""
    return [n for n, line in enumerate(data.split(b"\n"), 1) if line.strip()]


# -- JSON lines ------------------------------------------------------------------------------

garbage_lines = st.one_of(
    st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"\n", b" ")),
    st.sampled_from(
        [
            b"[1, 2]",
            b"42",
            b'"text"',
            b"null",
            b"{}",
            b"{",
            b'{"Event": 5}',
            b'{"Event": {}}',
            b'{"Event": {"System": [1]}}',
            b'{"Event": {"System": {"Provider": {"#attributes": 5}}}}',
            b'{"data": "not json", "event_record_id": 1}',
            b'{"data": 7, "event_record_id": 1}',
            b'{"a": "\\ud800"}',
            b"\xff\xfe{\x00}\x00",
            '{"Image": "Казах"}'.encode("cp1251"),
            b"NaN",
            b"\x00",
        ]
    ),
)


@FUZZ
@given(
    st.integers(3, 25),
    st.lists(st.tuples(st.integers(1, 30), garbage_lines), max_size=6),
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 400), st.integers(0, 255)), max_size=8),
    st.one_of(st.none(), st.integers(0, 10_000)),
    st.booleans(),
)
# Found by CI: a "#Fields: " line after the first event made the file sniff as a W3C log.
@example(n=3, inserts=[(1, b"#Fields: ")], flips=[], cut=None, gzipped=False)
def test_json_lines_corrupted(
    tmp_path: Path,
    n: int,
    inserts: list[tuple[int, bytes]],
    flips: list[tuple[int, int, int]],
    cut: int | None,
    gzipped: bool,
) -> None:
    """Garbage lines inserted, bytes flipped, the tail cut off: every non-empty line is an
    event or a quarantine entry, at its own line number. The first line stays intact: a broken
    first line is a known bug (see test_json_lines_broken_first_line)."""
    lines = json_lines(n)
    for where, junk in inserts:
        lines.insert(min(where, len(lines)), junk)
    for line_no, offset, byte in flips:
        i = 1 + line_no % (len(lines) - 1) if len(lines) > 1 else 0
        if i == 0:
            continue
        line = bytearray(lines[i])
        line[offset % len(line)] = byte
        lines[i] = bytes(line)
    data = b"\n".join(lines) + b"\n"
    if cut is not None:
        data = data[: max(len(lines[0]) + 1, cut)]
    path = tmp_path / "events.json"
    path.write_bytes(gzip.compress(data) if gzipped else data)

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    records = records_of(batches)
    bad = [item.record for item in quarantine.records]
    assert sorted(records + bad) == nonempty_lines(data)
    for item in quarantine.records:
        assert item.reason.startswith("json: ")
        assert item.excerpt  # the line, for the analyst


@FUZZ
@given(st.integers(2, 40), st.data())
def test_json_lines_gzip_truncated(tmp_path: Path, n: int, data: st.DataObject) -> None:
    """A gzip file cut anywhere: the events read are the first lines in order, and the cut is
    reported (a gzip error, or the file not recognised when the header itself is cut)."""
    plain = b"\n".join(json_lines(n)) + b"\n"
    packed = gzip.compress(plain)
    cut = data.draw(st.integers(0, len(packed) - 1))
    path = tmp_path / "events.json.gz"
    path.write_bytes(packed[:cut])

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    records = records_of(batches)
    assert records == list(range(1, len(records) + 1))
    assert quarantine.count >= 1
    assert all(
        item.reason.split(":", 1)[0] in ("io", "format", "json") for item in quarantine.records
    )


@FUZZ
@given(st.integers(1, 12), st.data())
def test_json_array_cut(tmp_path: Path, n: int, data: st.DataObject) -> None:
    """A JSON array cut short: the elements before the cut are read (arrays are read element
    by element), and the cut is reported once, not silently dropped."""
    whole = orjson.dumps([windows_doc(i) for i in range(1, n + 1)], option=orjson.OPT_INDENT_2)
    cut = data.draw(st.integers(1, len(whole) - 1))
    path = tmp_path / "events.json"
    path.write_bytes(whole[:cut])

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    hosts = [e["Computer"] for e in events_of(batches)]
    assert hosts == [f"host{i}" for i in range(1, len(hosts) + 1)]
    assert quarantine.count == 1
    assert quarantine.records[0].record == len(hosts) + 1


def test_json_array_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps([windows_doc(i) for i in range(1, 6)]))
    batches, quarantine = read(path)
    assert quarantine.count == 0
    assert [e["Computer"] for e in events_of(batches)] == [f"host{i}" for i in range(1, 6)]
    assert all(b.logsource.get("product") == "windows" for b in batches)


@FUZZ
@given(st.integers(3, 10), st.data())
def test_concatenated_pretty_json_broken_in_the_middle(
    tmp_path: Path, n: int, data: st.DataObject
) -> None:
    """``evtx_dump``-style concatenated pretty-printed documents, one of them cut short: the
    documents before it are read, and the break is reported once, at that document."""
    docs = [orjson.dumps(windows_doc(i), option=orjson.OPT_INDENT_2) for i in range(1, n + 1)]
    broken = data.draw(st.integers(1, n - 1))  # 0-based; never the first document
    text = docs[broken]
    docs[broken] = text[: data.draw(st.integers(1, len(text) - 2))]
    path = tmp_path / "dump.json"
    path.write_bytes(b"\n".join(docs) + b"\n")

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    hosts = [e["Computer"] for e in events_of(batches)]
    assert hosts[:broken] == [f"host{i}" for i in range(1, broken + 1)]
    assert quarantine.count == 1
    assert quarantine.records[0].record >= broken + 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\n\n\n",
        b"   \t  ",
        b"\xef\xbb\xbf",
        gzip.compress(b""),
        gzip.compress(b"\n"),
        b"\x1f\x8b",  # a gzip magic and nothing else
        b"ElfFile\x00",  # an EVTX magic and nothing else
        b"\x00" * 100,
    ],
    ids=[
        "empty",
        "newlines",
        "blanks",
        "bom",
        "gzip-empty",
        "gzip-newline",
        "gzip-magic",
        "evtx-magic",
        "zeros",
    ],
)
def test_empty_and_degenerate_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(content)
    batches, quarantine = read(path)
    assert events_of(batches) == []
    assert quarantine.count <= 1
    assert_well_formed(quarantine, path)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "cp1251", "latin-1"])
def test_wrong_encodings(tmp_path: Path, encoding: str) -> None:
    """JSON lines in another encoding: read where they happen to be valid UTF-8 JSON, reported
    otherwise; never an exception, never a silent loss of the whole file."""
    lines = [
        orjson.dumps({"Image": "C:\\Қорған.exe", "n": 1}).decode(),
        orjson.dumps({"Image": "C:\\café.exe", "n": 2}).decode(),
        orjson.dumps(windows_doc(3)).decode(),
    ]
    path = tmp_path / "events.json"
    path.write_bytes("\n".join(lines).encode(encoding, errors="replace"))
    batches, quarantine = read(path)
    assert_well_formed(quarantine, path)
    assert len(events_of(batches)) + quarantine.count > 0


def test_read_paths_mixed_directory(tmp_path: Path) -> None:
    """A folder of good, broken and empty files: each is read or reported, none stops the rest."""
    good = b"\n".join(json_lines(3)) + b"\n"
    (tmp_path / "a-good.json").write_bytes(good)
    (tmp_path / "b-empty.json").write_bytes(b"")
    (tmp_path / "c-cut.json.gz").write_bytes(gzip.compress(good)[:-12])
    (tmp_path / "d-array.json").write_bytes(b'[{"a": 1}, {"a": ')
    (tmp_path / "e-evtx.evtx").write_bytes(b"ElfFile\x00" + b"\x00" * 200)
    (tmp_path / "f-good.json").write_bytes(good)
    quarantine = Quarantine()
    batches = list(read_paths([tmp_path], quarantine))
    per_file: dict[str, int] = {}
    for batch in batches:
        per_file[Path(batch.path).name] = per_file.get(Path(batch.path).name, 0) + len(batch)
    assert per_file["a-good.json"] == 3
    assert per_file["f-good.json"] == 3
    reported = {Path(item.path).name for item in quarantine.records}
    assert {"b-empty.json", "c-cut.json.gz", "d-array.json", "e-evtx.evtx"} <= reported
    for item in quarantine.records:
        assert item.reason


# -- EVTX (shared corpus) --------------------------------------------------------------------


def evtx_baseline(path: Path) -> list[int]:
    batches, quarantine = read(path)
    assert quarantine.count == 0
    return records_of(batches)


@pytest.mark.corpus
@FUZZ
@given(st.sampled_from([EVTX_ONE_CHUNK, EVTX_MANY_CHUNKS]), st.data())
def test_evtx_truncated(
    tmp_path: Path, shared_file: Callable[[str], Path], name: str, data: st.DataObject
) -> None:
    """An EVTX file cut anywhere: no exception, and what is read is a subset of the records of
    the whole file. (That the cut is reported is a known bug: test_evtx_truncated_is_reported.)"""
    source = shared_file(name)
    whole = source.read_bytes()
    full = evtx_baseline(source)
    cut = data.draw(st.integers(0, len(whole) - 1))
    path = tmp_path / "cut.evtx"
    path.write_bytes(whole[:cut])

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    assert set(records_of(batches)) <= set(full)
    if cut < EVTX_HEADER:
        assert quarantine.count >= 1  # no complete file header: the file itself is reported


@pytest.mark.corpus
@FUZZ
@given(
    st.sampled_from([EVTX_ONE_CHUNK, EVTX_MANY_CHUNKS]),
    st.sampled_from(["header", "chunk header", "records", "anywhere"]),
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=20),
)
def test_evtx_flipped_bytes(
    tmp_path: Path,
    shared_file: Callable[[str], Path],
    name: str,
    region: str,
    flips: list[tuple[int, int]],
) -> None:
    """Random bytes overwritten in the file header, a chunk header, the records or anywhere:
    no exception, and the file yields events or quarantine entries (never nothing at all)."""
    source = shared_file(name)
    data = bytearray(source.read_bytes())
    start, size = {
        "header": (0, 128),
        "chunk header": (EVTX_HEADER, 512),
        "records": (EVTX_HEADER + 512, EVTX_CHUNK - 512),
        "anywhere": (0, len(data)),
    }[region]
    for offset, byte in flips:
        data[min(start + offset % size, len(data) - 1)] = byte
    path = tmp_path / "flipped.evtx"
    path.write_bytes(bytes(data))

    batches, quarantine = read(path)

    assert_well_formed(quarantine, path)
    assert len(events_of(batches)) + quarantine.count > 0


@pytest.mark.corpus
def test_evtx_garbage_around(tmp_path: Path, shared_file: Callable[[str], Path]) -> None:
    """Garbage before the file makes it unrecognisable (reported); garbage after it is
    ignored or reported, and the records are still read."""
    source = shared_file(EVTX_ONE_CHUNK)
    whole = source.read_bytes()
    full = evtx_baseline(source)
    before = tmp_path / "before.evtx"
    before.write_bytes(b"garbage\n" + whole)
    batches, quarantine = read(before)
    assert len(events_of(batches)) + quarantine.count > 0
    assert_well_formed(quarantine, before)
    after = tmp_path / "after.evtx"
    after.write_bytes(whole + b"\x00garbage" * 1000)
    batches, quarantine = read(after)
    assert records_of(batches) == full
    assert_well_formed(quarantine, after)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "cut"),
    [(EVTX_ONE_CHUNK, EVTX_HEADER + EVTX_CHUNK // 2), (EVTX_MANY_CHUNKS, 102_400)],
    ids=["one-chunk", "second-chunk"],
)
def test_evtx_truncated_is_reported(
    tmp_path: Path, shared_file: Callable[[str], Path], name: str, cut: int
) -> None:
    source = shared_file(name)
    full = evtx_baseline(source)
    path = tmp_path / "cut.evtx"
    path.write_bytes(source.read_bytes()[:cut])
    batches, quarantine = read(path)
    assert len(records_of(batches)) < len(full)
    assert quarantine.count >= 1


# -- regressions of the JSON reader: bugs found by these tests, fixed ----------------------


def test_json_lines_broken_first_line(tmp_path: Path) -> None:
    lines = json_lines(5)
    data = b"\n".join([lines[0][:30], *lines[1:]]) + b"\n"
    path = tmp_path / "events.json"
    path.write_bytes(data)
    batches, quarantine = read(path)
    assert records_of(batches) == [2, 3, 4, 5]
    assert [item.record for item in quarantine.records] == [1]


def test_json_lines_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join(json_lines(3)) + b"\n")
    batches, quarantine = read(path)
    assert records_of(batches) == [1, 2, 3]
    assert quarantine.count == 0


@pytest.mark.parametrize("layout", ["line", "pretty", "windows"])
def test_deeply_nested_json(tmp_path: Path, layout: str) -> None:
    depth = 1000
    if layout == "windows":
        inner = b'{"a":' * depth + b"1" + b"}" * depth
        doc = b'{"Event": {"System": {"EventID": 1}, "UserData": ' + inner + b"}}"
    else:
        sep = b"\n" if layout == "pretty" else b""
        doc = (b'{"a":' + sep) * depth + b"1" + b"}" * depth
    path = tmp_path / "deep.json"
    path.write_bytes(doc + b"\n" + orjson.dumps(windows_doc(1)) + b"\n")
    batches, quarantine = read(path)
    assert len(events_of(batches)) + quarantine.count >= 2


def test_lone_surrogate_then_keyword_rule(tmp_path: Path) -> None:
    path = tmp_path / "dump.json"
    path.write_bytes(b'{\n  "CommandLine": "x\\ud800y"\n}\n{\n  "CommandLine": "whoami"\n}\n')
    batches, _ = read(path)
    rule = (
        "title: t\nlogsource:\n  product: test\n"
        "detection:\n  keywords:\n    - whoami\n  condition: keywords\n"
    )
    engine = Engine(compile_texts([rule]))
    for batch in batches:
        batch.logsource["product"] = "test"
        list(engine.match(batch))
