"""The shortcuts that make template mining cheap per line must not change what is mined.

A miner remembers the masked lines it has seen and skips the tree search for a repeat while
the repeat's leaf is unchanged; it reports which ids were absorbed, so detectors re-key only
those. Both are checked against the plain tree search on real logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qorgan.detection.anomaly.drain import TemplateMatch, TemplateMiner
from qorgan.detection.anomaly.parsing_benchmark import LOG_FORMATS, read_messages


class _NoShortcut(TemplateMiner):
    """The miner with its memory of seen lines emptied before every line: always the tree."""

    def add(self, text: str) -> TemplateMatch:
        self._seen.clear()
        return super().add(text)


@pytest.mark.parametrize("name", ["Linux", "OpenSSH", "Apache", "Proxifier", "HPC"])
def test_repeated_lines_get_what_the_tree_search_gives(shared_data: Path, name: str) -> None:
    assert name in LOG_FORMATS
    messages = read_messages(shared_data / "loghub-2k", name)
    fast, slow = TemplateMiner(), _NoShortcut()
    assert [fast.add(m) for m in messages] == [slow.add(m) for m in messages]
    assert fast.templates() == slow.templates()
    assert fast.state() == slow.state()
    # the shortcut was taken: most of these lines repeat a masked line seen before
    assert len(fast._seen) < len(messages) / 2


def test_a_repeat_after_its_leaf_changed_is_searched_again() -> None:
    miner = TemplateMiner(variants=3)
    first = miner.add("Invalid user ann from 10.0.0.1")
    assert miner.add("Invalid user ann from 10.0.0.2") == TemplateMatch(
        first.template_id, "Invalid user ann from <*>", False
    )
    miner.add("Invalid user bob from 10.0.0.1")
    miner.add("Invalid user cid from 10.0.0.1")  # the third word: the user becomes <*>
    again = miner.add("Invalid user ann from 10.0.0.3")
    assert again == TemplateMatch(first.template_id, "Invalid user <*> from <*>", False)


def test_absorbed_ids_are_reported_once_from_a_counter() -> None:
    miner = TemplateMiner(variants=3)
    start = miner.changes
    ids = [miner.add(f"Invalid user {u} from 10.0.0.1").template_id for u in ("ann", "bob")]
    assert miner.changed(start) == []
    middle = miner.changes
    miner.add("Invalid user cid from 10.0.0.1")
    assert miner.changed(start) == [ids[1]]
    assert miner.changed(start, middle) == []
    assert miner.changed(miner.changes) == []
    assert miner.canonical(ids[1]) == ids[0]


def test_a_counter_older_than_the_kept_history_asks_for_a_full_re_key() -> None:
    miner = TemplateMiner(variants=2)
    miner._changes_base = 10  # as after the history was cut
    assert miner.changed(0) is None
    assert miner.changed(10) == []
