"""Sources: directories, gzip, and the byte offsets that drive the progress bar."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson

from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file, read_paths


def _lines(n: int) -> bytes:
    return b"".join(orjson.dumps({"n": i, "msg": "x" * 50}) + b"\n" for i in range(n))


def test_offsets_grow_to_the_file_size(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(_lines(1000))
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(_lines(1000)))
    for path in (plain, packed):
        batches = list(read_file(path, Quarantine(), batch_size=300))
        offsets = [b.offset for b in batches]
        assert [len(b) for b in batches] == [300, 300, 300, 100]
        assert offsets == sorted(offsets) and offsets[0] > 0
        assert offsets[-1] == path.stat().st_size


def test_directories_are_read_recursively_and_unknown_files_quarantined(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_bytes(_lines(3))
    (tmp_path / "notes.bin").write_bytes(b"\x00\x01\x02 not a log")
    (tmp_path / ".hidden.jsonl").write_bytes(_lines(5))
    quarantine = Quarantine()
    events = sum(len(b) for b in read_paths([tmp_path], quarantine))
    assert events == 3
    assert [r.reason.split(":")[0] for r in quarantine.records] == ["format"]
