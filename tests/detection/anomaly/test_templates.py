"""Template mining: what masking hides and what it keeps, template ids that stay, state that
survives a restart, bounded memory, and input that must never crash the miner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from qorgan.detection.anomaly.drain import (
    TemplateMiner,
    TemplateStateError,
    load_miner,
    save_miner,
)
from qorgan.detection.anomaly.logtext import (
    LogFormat,
    LogFormatError,
    LogReadError,
    event_text,
    file_templates,
    message_of,
    read_lines,
)
from qorgan.detection.anomaly.masking import mask

# -- masking --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a number on its own is a value; digits glued inside a word are part of a name
        ("sshd 2 started", "sshd <*> started"),
        ("sshd2 started", "sshd2 started"),
        ("log4j ext3 J12", "log4j ext3 J12"),
        ("took 12ms, read 3KB, 50% at 0x1f", "took <*>, read <*>, <*> at <*>"),
        # an address with its port is one value; a dotted version is a number, not an address
        ("from 10.0.0.1 port 22", "from <*> port <*>"),
        ("from 10.0.0.1:22 to db-1.example.com:5432", "from <*>:<*> to <*>:<*>"),
        ("version 1.2.3 of 999.1.1.1", "version <*> of <*>"),
        ("version 1.2.3.4.5", "version <*>"),
        ("from [fe80::1%eth0]:80 and ::1", "from [<*>]:<*> and <*>"),
        # identifiers
        ("block blk_-1608999687919862906 ok", "block <*> ok"),
        ("vm b9000564-fe1a-409b-b8cc-1e88b294cd1d up", "vm <*> up"),
        ("mail to a.b+c@example.kz sent", "mail to <*> sent"),
        # a name and a number keep the name; other mixed identifiers are one value
        ("on node-246 and R02-M1-N0-C:J12-U11", "on node-<*> and <*>"),
        ("generating core.1234 vCores:-1", "generating core.<*> vCores:<*>"),
        ("host ip-10-0-0-1.ec2.internal and ns.example.com", "host <*> and <*>"),
        ("sha 9f86d081884c7d659a2feaa0c55ad015 done", "sha <*> done"),
        ("jk2_init() Found child", "jk2_init() Found child"),
        ("setup.py and org.apache.Foo", "setup.py and org.apache.Foo"),
        # a path or a URL is one value; a ratio is two numbers, and/or is a word
        ("open /var/log/messages now", "open <*> now"),
        ("done 3/4 and/or", "done <*>/<*> and/or"),
        ("get https://example.com/a?b=1 ok", "get <*> ok"),
        ("copy C:\\Windows\\x.dll", "copy <*>"),
        # times inside a message
        ("at Fri Jul  1 07:57:30 2005 ok", "at <*> ok"),
        ("at 2005-06-03T15:42:50.675Z and 15:42:50", "at <*> and <*>"),
        # key=value keeps the key
        ("logname= uid=0 rhost=218.188.2.4", "logname= uid=<*> rhost=<*>"),
    ],
)
def test_masking_hides_values_and_keeps_words(text: str, masked: str) -> None:
    assert mask(text) == masked


# -- mining ---------------------------------------------------------------------------------


def test_lines_of_one_shape_share_a_template_and_others_do_not() -> None:
    miner = TemplateMiner()
    a = miner.add("Accepted password for root from 10.0.0.1 port 22 ssh2")
    b = miner.add("Accepted password for root from 10.0.0.9 port 4711 ssh2")
    c = miner.add("Connection closed by 10.0.0.1 [preauth]")
    assert a.is_new and not b.is_new and c.is_new
    assert a.template_id == b.template_id != c.template_id
    assert b.template == "Accepted password for root from <*> port <*> ssh2"


def test_a_template_keeps_its_id_when_a_masked_value_generalises_it() -> None:
    miner = TemplateMiner()
    first = miner.add("disk is full on sda")
    second = miner.add("disk is full on 42")
    assert second.template_id == first.template_id
    assert (first.template, second.template) == ("disk is full on sda", "disk is full on <*>")
    assert miner.templates() == {first.template_id: "disk is full on <*>"}


def test_a_word_becomes_a_variable_after_enough_distinct_words_keeping_the_first_id() -> None:
    miner = TemplateMiner(variants=4)
    ids = [miner.add(f"Invalid user {u} from 10.0.0.1").template_id for u in ("ann", "bob")]
    # two different words: two templates (could be two states, 'VM Started' / 'VM Paused')
    assert ids[0] != ids[1]
    ids += [miner.add(f"Invalid user {u} from 10.0.0.1").template_id for u in ("cid", "dan")]
    # the fourth distinct word makes the place a variable; the first template absorbs the others
    assert ids[3] == ids[0]
    assert miner.templates() == {ids[0]: "Invalid user <*> from <*>"}
    assert {miner.canonical(i) for i in ids} == {ids[0]}
    assert miner.add("Invalid user eve from 10.0.0.2").template_id == ids[0]


def test_a_few_states_stay_apart() -> None:
    miner = TemplateMiner()
    states = ("Started", "Paused", "Resumed")
    ids = {miner.add(f"[instance: 42] VM {s} (Lifecycle Event)").template_id for s in states}
    assert len(ids) == 3


def test_match_does_not_learn() -> None:
    miner = TemplateMiner()
    known = miner.add("worker 1 started in 12ms")
    before = miner.state()
    assert miner.match("worker 7 started in 3ms").template_id == known.template_id
    unknown = miner.match("completely different line")
    assert (unknown.template_id, unknown.is_new) == (0, True)
    assert miner.state() == before


def test_state_survives_a_restart_with_the_same_ids_and_mining_continues(tmp_path: Path) -> None:
    lines = [
        "Received block blk_1 of size 91178 from /10.250.10.6",
        "PacketResponder 1 for block blk_2 terminating",
        "Received block blk_3 of size 12 from /10.250.10.7",
    ]
    miner = TemplateMiner()
    ids = [miner.add(line).template_id for line in lines]
    path = tmp_path / "templates.json"
    save_miner(miner, path)
    assert json.loads(path.read_text(encoding="utf-8"))["templates"]  # plain JSON

    again = load_miner(path)
    assert again.templates() == miner.templates()
    assert [again.add(line).template_id for line in lines] == ids
    assert [m.is_new for m in map(again.add, lines)] == [False, False, False]
    new = again.add("Deleting block blk_4 file /data/blk_4")
    assert new.is_new and new.template_id > max(ids)


def test_a_missing_state_file_starts_afresh_and_a_broken_one_is_refused(tmp_path: Path) -> None:
    assert len(load_miner(tmp_path / "absent.json")) == 0
    broken = tmp_path / "broken.json"
    for text in ("{not json", "[]", '{"version": 1}', '{"version": 99, "settings": {}}'):
        broken.write_text(text, encoding="utf-8")
        with pytest.raises(TemplateStateError):
            load_miner(broken)
    state = TemplateMiner().state()
    state["templates"] = [{"id": 5, "words": ["a"], "leaf": ["2"], "size": 1, "last": 1}]
    with pytest.raises(TemplateStateError, match="malformed"):
        TemplateMiner.from_state(state)


def test_memory_is_bounded_and_ids_are_never_reused() -> None:
    miner = TemplateMiner(max_templates=5, max_per_leaf=3)
    seen = [miner.add(f"event{i} kind{i} happened").template_id for i in range(40)]
    assert len(miner) <= 5
    assert seen == sorted(set(seen))  # every line its own template, each a fresh id
    leaf = TemplateMiner(max_per_leaf=3)
    for word in ("alpha", "beta", "gamma", "delta", "omega"):
        leaf.add(f"one two {word} {word}x {word}y")
    assert len(leaf) == 3


@given(st.text(max_size=300))
@settings(derandomize=True, max_examples=300, deadline=None)
@example("\x00\x00\x00")
@example("a\ud800b \udfff")
@example("<*> <*><*> [<*>]")
@example("")
def test_any_text_is_mined_and_matched_again(text: str) -> None:
    miner = TemplateMiner()
    got = miner.add(text)
    assert got.template_id > 0
    assert miner.match(text).template_id == got.template_id
    assert TemplateMiner.from_state(json.loads(json.dumps(miner.state()))).templates() == (
        miner.templates()
    )


def test_a_one_megabyte_line_is_mined_within_the_word_limit() -> None:
    miner = TemplateMiner(max_words=64)
    long_words = miner.add("word " * 200_000)
    long_token = miner.add("x" * 1_000_000)
    assert len(long_words.template.split()) == 64
    assert long_words.template.endswith("<*>")
    assert long_token.template == "x" * 1_000_000
    assert miner.add("word " * 210_000).template_id == long_words.template_id


# -- the text to mine -----------------------------------------------------------------------


def test_a_log_format_gives_the_message_and_refuses_a_format_without_content() -> None:
    fmt = LogFormat(r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>")
    assert fmt.content("Jun 14 15:16:01 combo sshd(pam_unix)[19939]: check pass") == "check pass"
    assert fmt.content("Jun 14 15:16:01 combo kernel: oom") == "oom"
    assert fmt.content("no header here") == "no header here"
    with pytest.raises(LogFormatError):
        LogFormat("<Date> <Time>")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user x", "Invalid user x"),
        ("<34>1 2026-01-01T00:00:00Z host app 1 ID47 - hello there", "hello there"),
        (
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
            "PacketResponder 1",
        ),
        ("2015-10-18 18:01:47,978 INFO [main] org.x.MRAppMaster: Created it", "Created it"),
        ("[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok", "workerEnv.init() ok"),
        ("just a line: with a colon", "just a line: with a colon"),
    ],
)
def test_common_headers_are_stripped_and_other_lines_kept(line: str, message: str) -> None:
    assert message_of(line) == message


def test_event_text_per_format() -> None:
    assert event_text({"message": "Failed password for root", "program": "sshd"}, "syslog") == (
        "Failed password for root"
    )
    access = {
        "cs-method": "GET",
        "cs-uri-stem": "/search",
        "cs-uri-query": "q=secret&page=2&empty=",
        "cs-version": "HTTP/1.1",
    }
    assert event_text(access, "accesslog") == "GET /search?q=<*>&page=<*>&empty=<*> HTTP/1.1"
    assert event_text({**access, "cs-uri-query": None}, "accesslog") == "GET /search HTTP/1.1"
    assert event_text({"line": "Dec 10 06:55:46 h sshd[1]: bye"}, "text") == "bye"


def test_lines_are_read_whatever_their_bytes(tmp_path: Path) -> None:
    path = tmp_path / "odd.log"
    path.write_bytes(b"ok line\nbad \xff\xfe utf8\nnul\x00byte\r\n\nlast")
    assert list(read_lines(path)) == [
        (1, "ok line"),
        (2, "bad \ufffd\ufffd utf8"),
        (3, "nul\ufffdbyte"),
        (4, ""),
        (5, "last"),
    ]
    rows = file_templates(path, TemplateMiner())
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
    with pytest.raises(LogReadError, match="cannot read"):
        list(read_lines(tmp_path / "absent.log"))
