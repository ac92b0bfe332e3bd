"""The suite: the people's decisions reach the models (an objection keeps a person out of
scoring and learning from then on; a rejected pattern stops firing and is absorbed once), and
the baselines survive a restart. With the real entity detector on the real SSH log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pytest

from qorgan.core.identifiers import identifier_spellings, normalise_identifier
from qorgan.detection.anomaly.behaviour import EntityBehaviour
from qorgan.detection.anomaly.suite import AnomalySuite
from qorgan.detection.errors import DetectionError
from qorgan.telemetry.batch import EventBatch
from qorgan.telemetry.quarantine import Quarantine
from qorgan.telemetry.sources import read_file

SSH = "loghub/OpenSSH/OpenSSH_2k.log"
#: 37 failed passwords from a new address, then the server's real user logs on at 03:00.


def read(path: Path) -> list[EventBatch]:
    quarantine = Quarantine()
    out = list(read_file(path, quarantine))
    assert quarantine.count == 0
    return out


@pytest.fixture
def attack_file(tmp_path: Path, ssh_attack: Callable[..., list[str]]) -> Callable[..., Path]:
    """Writes the attack (``ssh_attack()``'s lines by default) to a file of its own."""

    def write(lines: list[str] | None = None) -> Path:
        path = tmp_path / "attack.log"
        path.write_text("\n".join(lines or ssh_attack()) + "\n", encoding="utf-8")
        return path

    return write


@pytest.fixture
def learned(shared_file: Callable[[str], Path]) -> Callable[..., AnomalySuite]:
    def make(**options: object) -> AnomalySuite:
        suite = AnomalySuite([EntityBehaviour("org-a")], **options)  # type: ignore[arg-type]
        for batch in read(shared_file(SSH)):
            suite.observe(batch)
        return suite

    return make


def observe(suite: AnomalySuite, path: Path) -> list:
    return [f for batch in read(path) for f in suite.observe(batch)]


def test_the_attack_is_found_without_decisions(learned, attack_file) -> None:
    found = observe(learned(), attack_file())
    assert [f.identifiers for f in found] == [("fztu",)]


def test_an_objection_removes_the_person_from_scoring_from_then_on(
    learned, attack_file, ssh_attack
) -> None:
    suite = learned()
    suite.exclude([normalise_identifier("FZTU")])  # any spelling of the identifier
    found = observe(suite, attack_file())
    assert found == []
    assert suite.skipped_events == len(ssh_attack())
    # Not learned either: nothing of the excluded events is in the baselines.
    assert "185.220.101.47" not in json.dumps(suite.state())
    # Another person in the same attack is still scored (the neighbour).
    observe(suite, attack_file(ssh_attack(user="root")))
    assert "185.220.101.47" in json.dumps(suite.state())


def test_an_objection_by_keyed_hash(learned, attack_file) -> None:
    """As the store keeps them: the identify function gives the excluded form."""
    import hashlib

    def identify(value: str) -> str:
        return hashlib.sha256(normalise_identifier(value).encode()).hexdigest()

    suite = learned(identify=identify)
    suite.exclude([identify("fztu")])
    assert observe(suite, attack_file()) == []


def test_a_windows_account_is_the_person_whatever_its_domain() -> None:
    assert normalise_identifier(" CORP\\Alice ") == normalise_identifier("alice")
    assert normalise_identifier("alice") != normalise_identifier("alicia")


def test_a_rejected_pattern_stops_firing_and_is_absorbed_once(
    learned, attack_file, ssh_attack
) -> None:
    first = learned()
    found = observe(first, attack_file())
    assert len(found) == 1
    rejected = found[0].to_dict()

    suite = learned(rejected=[rejected])
    assert observe(suite, attack_file()) == []
    assert suite.withheld_findings == 0  # the model took it in: it no longer scores it
    assert suite.state()["absorbed"] == [rejected["fingerprint"]]

    # Absorbed before (a restart's state says so): not given to the model again, and the
    # pattern is still withheld by the suite itself.
    again = learned()
    again.load({"version": 1, "absorbed": [rejected["fingerprint"]], "models": {}})
    again.reject([rejected])
    assert observe(again, attack_file()) == []
    assert again.withheld_findings == 1
    # The neighbour: the same attack from another address is another pattern, and fires.
    other = ssh_attack(address="185.220.101.99")
    found = observe(again, attack_file(other))
    assert [f.pattern for f in found] == [rejected["pattern"].replace(".47", ".99")]


def test_baselines_survive_a_restart(learned, attack_file, tmp_path: Path) -> None:
    suite = learned()
    suite.save(tmp_path / "state")
    fresh = AnomalySuite([EntityBehaviour("org-a")])
    assert fresh.restore(tmp_path / "state")
    assert fresh.state() == suite.state()
    assert [f.to_dict() for f in observe(fresh, attack_file())] == [
        f.to_dict() for f in observe(suite, attack_file())
    ]
    # Nothing saved yet: False, and a model starts afresh.
    assert not AnomalySuite([EntityBehaviour("org-a")]).restore(tmp_path / "none")


def test_a_broken_state_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "anomaly-state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DetectionError, match="not JSON"):
        AnomalySuite([EntityBehaviour("org-a")]).restore(tmp_path)
    (tmp_path / "anomaly-state.json").write_text('{"version": 99}', encoding="utf-8")
    with pytest.raises(DetectionError, match="version"):
        AnomalySuite([EntityBehaviour("org-a")]).restore(tmp_path)


def test_two_models_of_one_name_are_refused() -> None:
    with pytest.raises(DetectionError, match="share a model name"):
        AnomalySuite([EntityBehaviour("org-a"), EntityBehaviour("org-a")])


def _app_batch(*messages: str) -> EventBatch:
    batch = EventBatch(path="/var/log/app.log", format="syslog", logsource={"product": "linux"})
    for i, message in enumerate(messages):
        batch.append({"program": "portal", "message": message}, i, None, "web1")
    return batch


def _left_out(excluded: Iterable[str], about: Sequence[str], others: Sequence[str]) -> None:
    """Every message of ``about`` is neither scored nor learned once ``excluded`` (identifiers
    in the suite's form) are; every one of ``others``, its neighbours, still is."""
    from qorgan.detection.anomaly.rarity import TemplateRarityDetector

    rarity = TemplateRarityDetector()
    suite = AnomalySuite([rarity])
    suite.exclude(excluded)
    suite.observe(_app_batch(*about))
    assert suite.skipped_events == len(about)
    assert rarity.miner._clock == 0  # none of them was learned
    suite.observe(_app_batch(*others))
    assert suite.skipped_events == len(about)
    assert rarity.miner._clock == len(others)


def test_a_person_named_only_in_a_message_is_left_out_too() -> None:
    """No identifier field names them: the words of the free text are compared (a user name,
    ``DOMAIN\\user``, an e-mail address, an IIN at the end of a sentence), each word whole.
    Neighbours: other people whose names contain, or are contained in, an excluded one."""
    _left_out(
        [normalise_identifier(v) for v in ("ann", "bob", "dana@gov.kz", "880101300123")],
        about=[
            "login ok for ann from 10.0.0.1",
            "password reset by user=Ann",
            "share opened by CORP\\bob",
            "mail to dana@gov.kz bounced",
            "record of iin 880101300123.",
        ],
        others=[
            "login ok for annabel from 10.0.0.1",
            "channel ann2 opened",
            "share opened by CORP\\bobby",
            "mail to dana@gov.kz.example bounced",
            "record of iin 880101300124.",
        ],
    )


def test_a_person_named_in_several_words_is_left_out_too() -> None:
    """A full name (two or three words of letters, in any script) and a phone number or an IIN
    written in groups are compared together, not only word by word. Neighbours: the first name
    alone, another surname, one digit off, another IIN, and the same digits cut by something
    that is not a group separator (an address, a time)."""
    names = ("Aigerim Saparova", "Айгерим Сапарова", "+7 (701) 123-45-67", "880101300123")
    _left_out(
        [normalise_identifier(v) for v in names],
        about=[
            "request by Aigerim  Saparova approved",
            "заявка от Айгерим Сапарова Нурлановна принята",
            "callback to +7 701 123 45 67 failed",
            "sms to 7 (701) 123-45-67, code 4411",
            "record of iin 880101 300123 opened",
            "record of iin 880101-300-123 opened",
        ],
        others=[
            "request by Aigerim approved",
            "request by Aigerim Saparbekova approved",
            "заявка от Сапаровой принята",
            "callback to +7 701 123 45 68 failed",
            "record of iin 880101 300124 opened",
            "hosts 7.701.123.45 and 67 up at 10:20:30",
        ],
    )


def test_a_person_written_in_another_order_with_initials_or_a_trunk_prefix_is_left_out() -> None:
    """An objection keeps every spelling of the person (identifier_spellings, as the store
    does): a record that puts the surname first or cuts a name to initials, and a phone written
    with 8 or without a prefix, are left out; another person with the same first name is not."""
    _left_out(
        [s for v in ("Айгерим Сапарова", "+7 701 123 45 67") for s in identifier_spellings(v)],
        about=[
            "заявка от Сапарова Айгерим Нурлановна принята",
            "заявку подписала Сапарова А.Н. сегодня",
            "заявку подписала А.Н. Сапарова сегодня",
            "заявку подписала А. Сапарова сегодня",
            "callback to 8 (701) 123-45-67 failed",
            "callback to 87011234567 failed",
            "sms to 701 123 45 67 sent",
        ],
        others=[
            "заявка от Айгерим Сапарбековой принята",
            "заявку подписала Сапарбекова А.Н. сегодня",
            "заявку подписала Б. Ахметов сегодня",
            "callback to 8 (701) 123-45-68 failed",
            "sms to 702 123 45 67 sent",
        ],
    )


def test_a_new_objection_applies_to_words_compared_before() -> None:
    suite = AnomalySuite([EntityBehaviour("org-a")])
    suite.exclude(["someone-else"])
    suite.observe(_app_batch("login ok for ann"))
    assert suite.skipped_events == 0
    suite.exclude([normalise_identifier("ann")])
    suite.observe(_app_batch("login ok for ann"))
    assert suite.skipped_events == 1
