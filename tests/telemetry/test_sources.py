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


def _folder_with_links(tmp_path: Path) -> tuple[Path, Path]:
    """A hunt folder holding a log, and links out of it: to a file and to a folder."""
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secret.jsonl").write_bytes(_lines(7))
    (outside / "secrets" / "more.jsonl").write_bytes(_lines(9))
    root = tmp_path / "hunt" / "1"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "mine.jsonl").write_bytes(_lines(3))
    (root / "file-link.jsonl").symlink_to(outside / "secret.jsonl")
    (root / "sub" / "folder-link").symlink_to(outside / "secrets")
    (root / "inner-link.jsonl").symlink_to(root / "sub" / "mine.jsonl")  # stays inside
    return root, outside


def test_links_out_of_the_root_are_quarantined_not_read(tmp_path: Path) -> None:
    root, _outside = _folder_with_links(tmp_path)
    quarantine = Quarantine()
    batches = list(read_paths([root], quarantine, root=root))
    read = sorted((Path(b.path).name, len(b)) for b in batches)
    assert read == [("inner-link.jsonl", 3), ("mine.jsonl", 3)]
    refused = sorted((Path(q.path).name, q.reason) for q in quarantine.records)
    assert refused == [
        ("file-link.jsonl", "io: a symbolic link out of the folder hunted; not read"),
        ("folder-link", "io: a symbolic link out of the folder hunted; not read"),
    ]
    # Named directly (or swapped in after the folder was walked), a link out is refused too.
    quarantine = Quarantine()
    assert list(read_file(root / "file-link.jsonl", quarantine, root=root)) == []
    assert [q.reason for q in quarantine.records] == [
        "io: a symbolic link out of the folder hunted; not read"
    ]


def test_without_a_root_file_links_are_followed_and_folder_links_reported(
    tmp_path: Path,
) -> None:
    """``qorgan hunt`` reads what its user names, links included; a folder link met while
    walking is not followed (that could loop), and says so."""
    root, _outside = _folder_with_links(tmp_path)
    quarantine = Quarantine()
    read = sorted((Path(b.path).name, len(b)) for b in read_paths([root], quarantine))
    assert read == [("file-link.jsonl", 7), ("inner-link.jsonl", 3), ("mine.jsonl", 3)]
    assert [(Path(q.path).name, q.reason) for q in quarantine.records] == [
        ("folder-link", "io: a symbolic link to a folder; not followed")
    ]
