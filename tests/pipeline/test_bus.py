"""The embedded event log: offsets, durability across reopening, consumer positions with their
state, group commits from many threads, reading from inside an entry, trimming."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qorgan.pipeline.bus import Entry, Position, decode, encode
from qorgan.pipeline.sqlite_bus import SqliteBus


def entry(org: int, *messages: bytes, source: int = 1) -> Entry:
    return Entry(source_id=source, organisation_id=org, received=1.0, messages=list(messages))


@given(st.lists(st.binary(max_size=300), max_size=50))
@example([b"", b"\n", b"\x00" * 5])
@settings(max_examples=200)
def test_a_frame_of_messages_decodes_to_the_same_messages(messages: list[bytes]) -> None:
    assert decode(encode(messages)) == messages


def test_offsets_are_per_partition_and_survive_reopening(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "log.db", partitions=2)
    first, second, third = entry(1, b"a", b"b"), entry(2, b"c"), entry(3, b"d", b"e", b"f")
    bus.append([first, second, third])
    assert (first.partition, first.first) == (1, 0)
    assert (second.partition, second.first) == (0, 0)
    assert (third.partition, third.first, third.next) == (1, 2, 5)
    bus.commit("detection", 1, Position(2, b"windows"))
    bus.close()

    again = SqliteBus(tmp_path / "log.db", partitions=2)
    assert [again.end(0), again.end(1)] == [1, 5]
    assert again.position("detection", 1) == Position(2, b"windows")
    assert again.position("detection", 0) == Position(0, None)
    assert again.position("archive", 1) == Position(0, None)
    assert [again.committed("detection", 1), again.committed("detection", 0)] == [2, 0]
    read = again.read(1, 0, 100)
    assert [(e.first, e.messages) for e in read] == [(0, [b"a", b"b"]), (2, [b"d", b"e", b"f"])]
    assert again.lag("detection") == 1 + 3
    fourth = entry(1, b"g")
    again.append([fourth])
    assert (fourth.partition, fourth.first) == (1, 5)
    again.close()


def test_another_number_of_partitions_is_refused(tmp_path: Path) -> None:
    SqliteBus(tmp_path / "log.db", partitions=2).close()
    with pytest.raises(ValueError, match="2 partitions, not 3"):
        SqliteBus(tmp_path / "log.db", partitions=3)


def test_a_read_from_inside_an_entry_returns_that_entry(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "log.db")
    bus.append([entry(1, b"a", b"b", b"c"), entry(1, b"d")])
    assert [e.first for e in bus.read(0, 1, 100)] == [0, 3]
    assert [e.first for e in bus.read(0, 3, 100)] == [3]
    assert bus.read(0, 4, 100) == []
    # The limit counts messages: the first entry alone already reaches it.
    assert [e.first for e in bus.read(0, 0, 2)] == [0]
    bus.close()


def test_many_threads_share_commits_and_lose_nothing(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "log.db")
    per_thread, threads = 300, 8

    def send(n: int) -> None:
        for i in range(per_thread):
            bus.append([entry(1, f"{n}-{i}".encode())])

    workers = [threading.Thread(target=send, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    got = [m for e in bus.read(0, 0, 10**6) for m in e.messages]
    assert sorted(got) == sorted(
        f"{n}-{i}".encode() for n in range(threads) for i in range(per_thread)
    )
    assert bus.end(0) == per_thread * threads
    # Each thread's messages keep their order.
    for n in range(threads):
        mine = [m for m in got if m.startswith(f"{n}-".encode())]
        assert mine == [f"{n}-{i}".encode() for i in range(per_thread)]
    bus.close()


def test_waiting_returns_when_a_message_arrives(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "log.db")
    assert bus.wait(0, 0, 0.01) is False
    timer = threading.Timer(0.05, lambda: bus.append([entry(1, b"x")]))
    timer.start()
    assert bus.wait(0, 0, 10.0) is True
    timer.join()
    bus.close()


def test_trimming_keeps_what_any_consumer_still_needs(tmp_path: Path) -> None:
    bus = SqliteBus(tmp_path / "log.db")
    bus.append([entry(1, b"a", b"b"), entry(1, b"c"), entry(1, b"d")])
    bus.commit("detection", 0, Position(3))
    bus.commit("archive", 0, Position(2))
    assert bus.trim(["detection", "archive"]) == 1  # only the first entry is behind both
    assert [e.first for e in bus.read(0, 0, 100)] == [2, 3]
    bus.commit("archive", 0, Position(4))
    assert bus.trim(["detection", "archive"]) == 1
    assert [e.first for e in bus.read(0, 0, 100)] == [3]
    bus.close()
    # Offsets go on from where they were, even with the entries before trimmed away.
    again = SqliteBus(tmp_path / "log.db")
    assert again.end(0) == 4
    again.close()
