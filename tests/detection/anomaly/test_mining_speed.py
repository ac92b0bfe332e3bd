"""The shortcuts that make template mining cheap per line must not change what is mined.

Two template detectors of a suite share one miner (each line is mined once) and must find
what each finds with a miner of its own. A miner remembers the masked lines it has seen and
skips the tree search for a repeat while the repeat's leaf is unchanged; it reports which ids
were absorbed, so detectors re-key only those. Each is checked against the plain way on real
logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qorgan.detection.anomaly import drain
from qorgan.detection.anomaly.drain import TemplateMatch, TemplateMiner
from qorgan.detection.anomaly.eventkeys import SharedMiner
from qorgan.detection.anomaly.frequency import TemplateFrequencyDetector
from qorgan.detection.anomaly.lines import LineRarityDetector
from qorgan.detection.anomaly.masking import mask, tokens
from qorgan.detection.anomaly.parsing_benchmark import LOG_FORMATS, read_messages
from qorgan.detection.anomaly.rarity import TemplateRarityDetector
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file


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


class _EveryTemplate(TemplateMiner):
    """The miner comparing a line with every template of its leaf (no postings)."""

    def _candidates(self, leaf: tuple[str, ...], words: list[str]) -> set[int] | None:
        return None


ACCESS_LOG = (
    "evtx-attack-samples/Command and Control/web_attack_and_isp_webshell_localhost_access_log.txt"
)


@pytest.mark.parametrize("name", ["access", *LOG_FORMATS])
def test_a_leaf_s_postings_pick_the_templates_a_full_comparison_picks(
    shared_data: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name == "access":  # the request, as a hunt mines it: "GET /one-off?x HTTP/1.1"
        text = (shared_data / ACCESS_LOG).read_text(encoding="utf-8", errors="replace")
        lines = [x.split('"')[1] for x in text.splitlines() if x.count('"') >= 2]
    else:
        lines = read_messages(shared_data / "loghub-2k", name)
    # postings decide in every leaf, however small (generalising, absorbing and dropping must
    # keep them in step), and a small leaf limit fills the access log's leaf of one-off URLs
    monkeypatch.setattr(drain, "_SCAN_LEAF", 0)
    indexed, full = TemplateMiner(max_per_leaf=40), _EveryTemplate(max_per_leaf=40)
    assert [indexed.add(x) for x in lines] == [full.add(x) for x in lines]
    assert indexed.state() == full.state()
    if name == "access":
        assert max(len(ids) for ids in indexed._leaves.values()) == 40
    assert [indexed.match(x) for x in lines[::7]] == [full.match(x) for x in lines[::7]]
    assert TemplateMiner.from_state(indexed.state())._postings == indexed._postings


def test_postings_count_the_words_a_comparison_lets_agree() -> None:
    miner = TemplateMiner()
    for c in "abcdefghijkl":  # more templates in one leaf than are compared one by one
        miner.add(f"GET 10.0.0.1 page{c} zone{c} area{c}")
    (leaf,) = miner._leaves
    assert len(miner._leaves[leaf]) == 12
    candidates = miner._candidates(leaf, miner._words("GET 10.9.9.9 pagec zonec areac"))
    assert candidates is not None
    assert [miner._templates[tid].text for tid in candidates] == ["GET <*> pagec zonec areac"]
    # one word of three differing is within the similarity; two are not
    near = miner._candidates(leaf, miner._words("GET 10.9.9.9 pagec zonec other"))
    assert near == candidates
    assert miner._candidates(leaf, miner._words("GET 10.9.9.9 pagec other other")) == set()


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


def _pair(miner: TemplateMiner | SharedMiner | None = None) -> list:
    return [TemplateRarityDetector(miner=miner), TemplateFrequencyDetector(miner=miner)]


def _run(detectors: list, batches: list[EventBatch]) -> list[str]:
    return [repr(f) for b in batches for d in detectors for f in d.observe(b)]


@pytest.mark.parametrize("relative", ["loghub/OpenSSH/OpenSSH_2k.log", "loghub/Linux/Linux_2k.log"])
def test_detectors_sharing_a_miner_find_what_they_find_with_their_own(
    shared_data: Path, relative: str
) -> None:
    batches = list(read_file(shared_data / relative, Quarantine(), batch_size=100))
    own = _pair()
    one = SharedMiner()
    sharing = _pair(one)
    expected = _run(own, batches)
    assert expected  # these logs do have new, rare and bursting templates
    assert _run(sharing, batches) == expected
    assert one.miner._clock == 2000  # each line mined once, not once per detector
    assert own[0].miner._clock == own[1].miner._clock == 2000
    assert [d.state() for d in sharing] == [d.state() for d in own]
    # The miner changed while the lines were mined, and both detectors re-keyed their counts.
    assert one.miner.changes > 0


def test_a_shared_miner_loaded_twice_continues_as_separate_ones(shared_data: Path) -> None:
    path = shared_data / "loghub/OpenSSH/OpenSSH_2k.log"
    batches = list(read_file(path, Quarantine(), batch_size=100))
    half = len(batches) // 2
    first = _pair(SharedMiner())
    _run(first, batches[:half])
    saved = [d.state() for d in first]
    own, sharing = _pair(), _pair(SharedMiner())
    for detectors in (own, sharing):
        for detector, state in zip(detectors, saved, strict=True):
            detector.load(state)
    assert sharing[0].miner is sharing[1].miner
    assert _run(sharing, batches[half:]) == _run(own, batches[half:])


def test_a_detector_that_observes_a_batch_twice_learns_it_twice() -> None:
    batch = EventBatch(path="/var/log/x", format="syslog", logsource={"product": "linux"})
    for i in range(3):
        batch.append({"program": "app", "message": f"job {i} done"}, i, None, "h")
    one = SharedMiner()
    rarity, frequency = _pair(one)
    rarity.observe(batch)
    frequency.observe(batch)  # replayed: not learned again
    assert one.miner._clock == 3
    rarity.observe(batch)  # a second pass of the same detector: learned again
    assert one.miner._clock == 6


def test_only_events_with_text_are_mined_and_a_text_format_is_mined_whole() -> None:
    windows = EventBatch(path="Security.evtx", format="evtx", logsource={"product": "windows"})
    windows.append({"EventID": 4624, "TargetUserName": "ann", "LogonType": 3}, 1, None, "dc1")
    windows.append({"EventID": 4688, "Image": "C:\\x.exe"}, 2, None, "dc1")
    windows.append({"EventID": 1, "message": "service started"}, 3, None, "dc1")
    text = EventBatch(path="/var/log/syslog", format="syslog", logsource={"product": "linux"})
    text.append({"program": "cron", "message": "job done"}, 1, None, "h")
    text.append({"program": "cron", "raw": "no message field"}, 2, None, "h")
    rarity, frequency, lines = [*_pair(), LineRarityDetector()]
    for detector in (rarity, frequency, lines):
        detector.observe(windows)
        state = json.dumps(detector.state())
        assert "TargetUserName" not in state  # no k=v text of the structured fields learned
        detector.observe(text)
    # the evtx event with a message, and both syslog lines
    assert rarity.miner._clock == frequency.miner._clock == 3
    assert sorted(rarity.miner.templates().values()) == [
        "job done",
        "no message field",
        "service started",
    ]
    assert sum(m.lines for m in lines._models.values()) == 3


def test_words_are_masked_as_the_whole_text_is_on_every_real_line(shared_data: Path) -> None:
    texts: list[str] = []
    for name in LOG_FORMATS:
        texts += read_messages(shared_data / "loghub-2k", name)
    for path in sorted((shared_data / "loghub-2k").rglob("*.log")):
        texts += path.read_text(encoding="utf-8", errors="replace").splitlines()
    assert len(texts) >= 40_000
    assert [tokens(t) for t in texts] == [mask(t).split() for t in texts]


@settings(derandomize=True, max_examples=500)
@given(
    st.text(alphabet=st.sampled_from(list("aJulnMsKB \u0661\u00b20123:./-@x\\<>*\t")), max_size=60)
)
@example("session of Jul  1 07:57:30 2005 ended")
@example("\u0661\u0662\u0663 and \u00b2 x")
@example("(Mon Jul  1 07:57:30 2005)")
@example("sent 1.16 KB in 20 ms, user 12  ms")
@example("2005-06-03 15:42:50 and <*> and <*><*>")
def test_plain_words_skip_the_rules_without_changing_the_words(text: str) -> None:
    assert tokens(text) == mask(text).split()
