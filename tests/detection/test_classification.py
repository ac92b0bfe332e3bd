"""Classification of rules into KZ-CERT, RSIT, ATT&CK and Criminal Code, and the coverage report."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorgan.detection.classification import (
    DEFAULT_PATH,
    Classification,
    ClassificationError,
    attack_ids,
    classify,
    load_taxonomy,
    parse_taxonomy,
)
from qorgan.detection.coverage import coverage_report, navigator_layer, render_text
from qorgan.detection.errors import DetectionError
from qorgan.detection.loader import compile_texts, load_plan
from qorgan.detection.plan import Plan, RuleMeta

PACK = Path(__file__).resolve().parents[2] / "src" / "qorgan" / "detection" / "rules"


def meta(
    tags: tuple[str, ...] = (),
    logsource: dict[str, str] | None = None,
    attributes: dict[str, Any] | None = None,
    rule_id: str = "r-1",
) -> RuleMeta:
    return RuleMeta(
        id=rule_id,
        title=f"rule {rule_id}",
        level="high",
        status="test",
        tags=tags,
        logsource=tuple((logsource or {"product": "windows"}).items()),
        path=f"/rules/{rule_id}.yml",
        attributes=tuple((attributes or {}).items()),
    )


def raw_mapping() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- golden cases


@pytest.mark.parametrize(
    ("tags", "logsource", "expected"),
    [
        (
            ("attack.credential-access", "attack.t1110.001"),
            {"product": "linux", "service": "sshd"},
            ("credential-attack", "intrusion-attempts", "brute-force", ("205",)),
        ),
        (
            ("attack.credential-access", "attack.t1003.001"),
            None,
            ("credential-attack", "intrusions", "privileged-account-compromise", ("205", "208")),
        ),
        (
            ("attack.discovery", "attack.t1046"),
            None,
            ("scanning", "information-gathering", "scanner", ("205",)),
        ),
        (
            ("attack.impact", "attack.t1498.001"),
            {"category": "firewall"},
            ("network-attack", "availability", "dos", ("207",)),
        ),
        (
            ("attack.impact", "attack.t1486"),
            None,
            (
                "malware-spam",
                "information-content-security",
                "unauthorised-information-modification",
                ("206", "210"),
            ),
        ),
        (
            ("attack.impact", "attack.t1490"),
            None,
            ("malware-spam", "malicious-code", "infected-system", ("206", "210")),
        ),
        (
            ("attack.initial-access", "attack.t1566.001"),
            None,
            ("malware-spam", "fraud", "phishing", ("205", "210")),
        ),
        (
            ("attack.initial-access", "attack.t1190"),
            {"category": "webserver"},
            ("network-attack", "intrusion-attempts", "exploit", ("205",)),
        ),
        (
            ("attack.initial-access", "attack.t1190", "cve.2021-44228"),
            {"category": "webserver"},
            ("network-attack", "intrusion-attempts", "ids-alert", ("205",)),
        ),
        (
            ("attack.persistence", "attack.t1505.003"),
            {"category": "webserver"},
            ("unauthorised-access", "intrusions", "application-compromise", ("205", "210")),
        ),
        (
            ("attack.defense-impairment", "attack.t1685.001"),
            None,
            ("protection-bypass", "intrusions", "system-compromise", ("205", "206")),
        ),
        (
            ("attack.defense-evasion", "attack.t1562.004"),
            None,
            ("protection-bypass", "intrusions", "system-compromise", ("205", "206")),
        ),
        (
            ("attack.t1070.001",),
            None,
            ("protection-bypass", "intrusions", "system-compromise", ("205", "206")),
        ),
        (
            ("attack.initial-access", "attack.t1078.004"),
            {"product": "azure", "service": "signinlogs"},
            ("unauthorised-access", "intrusions", "unprivileged-account-compromise", ("205",)),
        ),
        (
            ("attack.exfiltration", "attack.t1567.002"),
            None,
            ("unauthorised-access", "information-content-security", "data-leak", ("205", "208")),
        ),
        (
            ("attack.impact", "attack.t1491.002"),
            None,
            (
                "network-attack",
                "information-content-security",
                "unauthorised-information-modification",
                ("205", "206"),
            ),
        ),
    ],
)
def test_golden_technique_classes(
    tags: tuple[str, ...], logsource: dict[str, str] | None, expected: tuple[Any, ...]
) -> None:
    c = classify(meta(tags, logsource))
    assert (c.kz_cert, c.rsit_class, c.rsit_type, c.criminal_code) == expected
    assert c.source is not None and c.source.startswith("mapping:")
    assert c.complete


@pytest.mark.parametrize(
    ("tactic", "kz_cert", "rsit_class"),
    [
        ("attack.execution", "unauthorised-access", "intrusions"),
        ("attack.stealth", "protection-bypass", "intrusions"),
        ("attack.defense_evasion", "protection-bypass", "intrusions"),
        ("attack.defense-impairment", "protection-bypass", "intrusions"),
        ("attack.discovery", "scanning", "information-gathering"),
        ("attack.reconnaissance", "scanning", "information-gathering"),
        ("attack.command-and-control", "malware-spam", "malicious-code"),
        ("attack.credential-access", "credential-attack", "information-content-security"),
        ("attack.collection", "unauthorised-access", "information-content-security"),
    ],
)
def test_tactic_fallback(tactic: str, kz_cert: str, rsit_class: str) -> None:
    c = classify(meta((tactic, "attack.t9999")))
    assert (c.kz_cert, c.rsit_class) == (kz_cert, rsit_class)
    assert c.source == f"mapping:tactic-{tactic.split('.')[1].replace('_', '-')}".replace(
        "defense-evasion", "stealth"
    )


def test_logsource_fallback_only_without_attack_tags() -> None:
    web = classify(meta((), {"category": "webserver"}))
    assert (web.kz_cert, web.rsit_type, web.source) == (
        "network-attack",
        "exploit",
        "mapping:logsource-webserver",
    )
    av = classify(meta(("detection.threat-hunting",), {"category": "antivirus"}))
    assert (av.kz_cert, av.rsit_class, av.rsit_type) == (
        "malware-spam",
        "malicious-code",
        "infected-system",
    )
    # a tactic entry wins over the logsource fallback
    assert classify(meta(("attack.discovery",), {"category": "webserver"})).kz_cert == "scanning"


def test_unclassified_rule() -> None:
    c = classify(meta(("car.2016-04-002",), {"product": "windows", "service": "security"}))
    assert (c.kz_cert, c.rsit_class, c.rsit_type, c.criminal_code, c.source) == (
        None,
        None,
        None,
        (),
        None,
    )
    assert not c.complete
    d = c.to_dict()
    assert d["kz_cert"] is None and d["kz_cert_label"] is None


def test_subtechnique_prefix_matching() -> None:
    for tag in ("attack.t1110", "attack.t1110.001", "attack.T1110.004"):
        assert classify(meta((tag,))).kz_cert == "credential-attack", tag
    # t1110 is a prefix of the id text t11105 only as a string: never a match
    assert classify(meta(("attack.t1105",))).source == "mapping:ingress-tool-transfer"
    # an entry naming a sub-technique does not match the parent
    data = raw_mapping()
    data["mapping"].insert(
        0,
        {
            "id": "only-sub",
            "techniques": ["t1059.001"],
            "kz_cert": "malware-spam",
            "rsit_class": "malicious-code",
            "rsit_type": "infected-system",
            "criminal_code": ["210"],
            "why": "test",
        },
    )
    taxonomy = parse_taxonomy(data)
    assert classify(meta(("attack.t1059.001",)), taxonomy).source == "mapping:only-sub"
    assert classify(meta(("attack.t1059",)), taxonomy).source != "mapping:only-sub"


def test_first_match_wins() -> None:
    # credential dumping is listed before process injection and obfuscation
    c = classify(meta(("attack.t1027", "attack.t1055.001", "attack.t1003.001")))
    assert c.source == "mapping:credential-dumping"
    # entry order, not tag order, decides
    c = classify(meta(("attack.t1003.001", "attack.t1486")))
    assert c.source == "mapping:ransomware-encryption"
    # a technique entry beats any tactic fallback
    c = classify(meta(("attack.credential-access", "attack.t1046")))
    assert c.source == "mapping:network-service-scanning"
    # put a catch-all first: it wins over everything
    data = raw_mapping()
    data["mapping"].insert(
        0,
        {
            "id": "first",
            "tactics": ["credential-access"],
            "kz_cert": "scanning",
            "rsit_class": "information-gathering",
            "rsit_type": "scanner",
            "criminal_code": [],
            "why": "test",
        },
    )
    c = classify(meta(("attack.credential-access", "attack.t1110")), parse_taxonomy(data))
    assert (c.kz_cert, c.source) == ("scanning", "mapping:first")


def test_entry_keys_are_anded() -> None:
    # the CVE entry needs both t1190 and a cve tag
    assert classify(meta(("cve.2023-1234",))).source is None
    assert classify(meta(("attack.t1190",))).source == "mapping:exploit-public-facing"


def test_attack_ids_and_output_case() -> None:
    techniques, tactics = attack_ids(
        [
            *("attack.T1110.001", "attack.credential_access", "attack.g0007", "attack.s0002"),
            *("attack.ds0005", "attack.t1110.001", "cve.2021-1", "detection.emerging-threats"),
        ]
    )
    assert techniques == ("t1110.001",)
    assert tactics == ("credential-access",)
    c = classify(meta(("attack.credential-access", "attack.t1110.001", "attack.t1110")))
    assert c.techniques == ("T1110.001", "T1110")
    assert c.tactics == ("credential-access",)


# --------------------------------------------------------------------------- overrides


def test_rule_attributes_override_everything() -> None:
    attrs = {
        "kz_cert": "protection-bypass",
        "rsit": "intrusions/system-compromise",
        "criminal_code": ["206", 207],
    }
    c = classify(meta(("attack.t1110",), attributes=attrs))
    assert (c.kz_cert, c.rsit_class, c.rsit_type, c.criminal_code, c.source) == (
        "protection-bypass",
        "intrusions",
        "system-compromise",
        ("206", "207"),
        "rule",
    )
    assert c.techniques == ("T1110",)


def test_partial_override_fills_from_mapping() -> None:
    c = classify(meta(("attack.t1110",), attributes={"kz_cert": "network-attack"}))
    assert (c.kz_cert, c.rsit_class, c.criminal_code) == (
        "network-attack",
        "intrusion-attempts",
        ("205",),
    )
    assert c.source == "rule+mapping:brute-force"
    # a rule without a mapping match can classify itself completely
    c = classify(
        meta((), attributes={"kz_cert": "scanning", "rsit": "information-gathering/scanner"})
    )
    assert (c.kz_cert, c.rsit_type, c.criminal_code, c.source) == (
        "scanning",
        "scanner",
        (),
        "rule",
    )
    # criminal_code may be a comma-separated string: the compiler keeps only scalar attributes
    c = classify(meta(("attack.t1110",), attributes={"criminal_code": "205, 210"}))
    assert c.criminal_code == ("205", "210")


def test_rsit_alias_in_override_is_read_as_the_rsit_id() -> None:
    attrs = {"rsit": "intrusion-attempts/exploit-known-vuln"}
    c = classify(meta(("attack.t1190",), attributes=attrs))
    assert (c.rsit_class, c.rsit_type, c.problems) == ("intrusion-attempts", "ids-alert", ())
    data = raw_mapping()
    data["rsit_aliases"]["x/y"] = "intrusions/nothing"
    with pytest.raises(ClassificationError, match="rsit_aliases 'x/y'"):
        parse_taxonomy(data)


def test_invalid_override_is_refused_and_reported(caplog: pytest.LogCaptureFixture) -> None:
    attrs = {"kz_cert": "hacking", "rsit": "intrusions/brute-force", "criminal_code": ["190"]}
    with caplog.at_level("WARNING"):
        c = classify(meta(("attack.t1110",), attributes=attrs, rule_id="bad-override"))
    assert (c.kz_cert, c.rsit_type, c.criminal_code) == (
        "credential-attack",
        "brute-force",
        ("205",),
    )
    assert c.source == "mapping:brute-force"
    assert len(c.problems) == 3
    assert "hacking" in caplog.text
    report = coverage_report(_plan_of([meta(("attack.t1110",), attributes=attrs)]))
    assert report["override_problems"][0]["problems"] == list(c.problems)


def test_override_from_rule_yaml() -> None:
    rule = """
title: Declares its classes
id: 33333333-3333-3333-3333-333333333333
status: test
level: high
kz_cert: scanning
rsit: information-gathering/scanner
criminal_code: "205"
tags: [attack.execution, attack.t1059]
logsource: {product: windows, category: process_creation}
detection:
    sel:
        CommandLine|contains: 'nmap'
    condition: sel
"""
    plan = compile_texts([rule])
    assert not plan.failures
    c = classify(plan.rules[0].meta)
    assert (c.kz_cert, c.rsit_type, c.criminal_code, c.source) == (
        "scanning",
        "scanner",
        ("205",),
        "rule",
    )


# --------------------------------------------------------------------------- the mapping file


def test_mapping_references_only_known_classes() -> None:
    taxonomy = load_taxonomy()
    assert set(taxonomy.kz_cert) == {
        "network-attack",
        "unauthorised-access",
        "scanning",
        "credential-attack",
        "malware-spam",
        "protection-bypass",
    }
    for labels in taxonomy.kz_cert.values():
        assert all(labels[lang].strip() for lang in ("kk", "ru", "en"))
    for entry in taxonomy.entries:
        assert entry.kz_cert in taxonomy.kz_cert, entry.id
        assert entry.rsit_class in taxonomy.rsit, entry.id
        assert entry.rsit_type in taxonomy.rsit_types(entry.rsit_class), entry.id
        assert entry.why.strip(), entry.id
        assert all(205 <= int(a) <= 213 for a in entry.criminal_code), entry.id
    # RSIT working-copy ids the brief and the coordinators rely on
    expected = {
        "intrusion-attempts": {"brute-force", "exploit", "ids-alert"},
        "malicious-code": {"infected-system", "c2-server"},
        "information-gathering": {"scanner", "sniffing"},
        "intrusions": {"system-compromise", "application-compromise"},
        "availability": {"dos", "ddos"},
        "information-content-security": {"unauthorised-information-access", "data-leak"},
        "fraud": {"phishing"},
    }
    for rsit_class, types in expected.items():
        assert types <= set(taxonomy.rsit_types(rsit_class)), rsit_class


def test_every_sigmahq_tactic_has_a_fallback() -> None:
    """The tactics that occur in the SigmaHQ tags (collected 2026, incl. the newer ones)."""
    fallbacks = set().union(*(e.tactics for e in load_taxonomy().entries if e.kind == "tactic"))
    assert {
        "reconnaissance",
        "resource-development",
        "initial-access",
        "execution",
        "persistence",
        "privilege-escalation",
        "defense-evasion",
        "stealth",
        "defense-impairment",
        "credential-access",
        "discovery",
        "lateral-movement",
        "collection",
        "command-and-control",
        "exfiltration",
        "impact",
    } <= fallbacks


def test_entries_are_grouped_techniques_then_tactics_then_logsource() -> None:
    kinds = [e.kind for e in load_taxonomy().entries]
    order = {"technique": 0, "tactic": 1, "logsource": 2}
    assert [order[k] for k in kinds] == sorted(order[k] for k in kinds)


def test_taxonomy_is_loaded_once() -> None:
    assert load_taxonomy() is load_taxonomy()


# --------------------------------------------------------------------------- validation


def _entry(data: dict[str, Any], index: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = data["mapping"][index]
    return entry


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: _entry(d).update(kz_cert="hacking"), "unknown KZ-CERT class 'hacking'"),
        (lambda d: _entry(d).update(rsit_class="intrusionz"), "unknown RSIT class 'intrusionz'"),
        (
            lambda d: _entry(d).update(rsit_class="availability", rsit_type="brute-force"),
            "RSIT type 'brute-force' is not a type of class 'availability'",
        ),
        (lambda d: _entry(d).pop("why"), "needs a non-empty 'why'"),
        (lambda d: _entry(d).pop("rsit_type"), "missing 'rsit_type'"),
        (lambda d: _entry(d).update(techniques="t1486"), "'techniques' must be a non-empty list"),
        (lambda d: _entry(d).update(techniques=["T-1486"]), "is not an ATT&CK technique id"),
        (lambda d: _entry(d).update(criminal_code=[205]), "list of article numbers as strings"),
        (lambda d: _entry(d).update(criminal_code=["190"]), "not an article of chapter 7"),
        (lambda d: _entry(d).update(severity="high"), "unknown key(s) severity"),
        (lambda d: _entry(d).pop("techniques"), "names nothing to match"),
        (lambda d: _entry(d, 1).update(id=_entry(d)["id"]), "duplicate id"),
        (lambda d: d["mapping"].append("t1486"), "must be a mapping, got str"),
        (lambda d: d["kz_cert"]["scanning"].pop("kk"), "needs non-empty labels kk, ru and en"),
        (lambda d: d["rsit"]["fraud"].update(types={}), "needs a label and a non-empty types"),
        (lambda d: d.pop("mapping"), "missing section(s): mapping"),
    ],
)
def test_malformed_mapping_is_refused(mutate: Any, message: str) -> None:
    data = copy.deepcopy(raw_mapping())
    mutate(data)
    with pytest.raises(ClassificationError, match=r"^test\.yml: ") as info:
        parse_taxonomy(data, source="test.yml")
    assert message in str(info.value)
    assert isinstance(info.value, DetectionError)


def test_unreadable_or_invalid_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ClassificationError, match="cannot read"):
        load_taxonomy(tmp_path / "absent.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("mapping: [\n", encoding="utf-8")
    with pytest.raises(ClassificationError, match="not valid YAML"):
        load_taxonomy(bad)
    not_a_mapping = tmp_path / "list.yml"
    not_a_mapping.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ClassificationError, match="must be a mapping"):
        load_taxonomy(not_a_mapping)


# --------------------------------------------------------------------------- alerts, report, layer


def test_to_dict_shape() -> None:
    d = classify(meta(("attack.credential-access", "attack.t1110.001"))).to_dict()
    assert d == {
        "kz_cert": "credential-attack",
        "kz_cert_label": {
            "kk": load_taxonomy().kz_cert["credential-attack"]["kk"],
            "ru": "Подбор и перехват паролей и других аутентификационных данных",
            "en": "Guessing and interception of passwords and other authentication data",
        },
        "rsit": {"class": "intrusion-attempts", "type": "brute-force"},
        "criminal_code": ["205"],
        "attack": {"techniques": ["T1110.001"], "tactics": ["credential-access"]},
        "source": "mapping:brute-force",
    }
    json.dumps(d)  # alerts store it as JSON


def _plan_of(metas: list[RuleMeta]) -> Plan:
    from qorgan.detection.plan import CompiledRule, Const

    return Plan(rules=[CompiledRule(m, 0, Const(True)) for m in metas])


def test_coverage_report_counts() -> None:
    plan = _plan_of(
        [
            meta(("attack.credential-access", "attack.t1110"), rule_id="a"),
            meta(("attack.credential-access", "attack.t1003.001"), rule_id="b"),
            meta(("attack.discovery", "attack.t1046"), rule_id="c"),
            meta((), {"product": "windows", "service": "security"}, rule_id="d"),
        ]
    )
    report = coverage_report(plan)
    assert (report["total"], report["classified"], report["share_classified"]) == (4, 3, 0.75)
    assert report["kz_cert"]["credential-attack"] == 2
    assert report["kz_cert"]["scanning"] == 1
    assert report["kz_cert"]["malware-spam"] == 0  # every class is listed
    assert report["rsit"]["intrusion-attempts"] == {"total": 1, "types": {"brute-force": 1}}
    assert report["rsit"]["intrusions"]["types"] == {"privileged-account-compromise": 1}
    assert report["tactics"] == {"credential-access": 2, "discovery": 1}
    assert report["criminal_code"] == {"205": 3, "208": 1}
    assert report["by_match"] == {"technique": 3, "unclassified": 1}
    assert report["unclassified"] == [
        {
            "path": "/rules/d.yml",
            "id": "d",
            "title": "rule d",
            "tags": [],
            "logsource": {"product": "windows", "service": "security"},
        }
    ]
    text = render_text(report)
    assert "classified (KZ-CERT and RSIT): 3 (75.00%)" in text
    assert "/rules/d.yml" in text
    json.dumps(report)


def test_navigator_layer_shape() -> None:
    plan = _plan_of(
        [
            meta(("attack.t1110.001",), rule_id="a"),
            meta(("attack.t1110.001", "attack.t1078"), rule_id="b"),
            meta(("attack.t1078",), attributes={"kz_cert": "network-attack"}, rule_id="c"),
        ]
    )
    layer = navigator_layer(plan, "Qorgan rules")
    assert layer["name"] == "Qorgan rules"
    assert layer["domain"] == "enterprise-attack"
    assert layer["versions"]["layer"] == "4.5"
    assert "navigator" in layer["versions"]
    assert "attack" not in layer["versions"]
    assert navigator_layer(plan, "x", attack_version="18")["versions"]["attack"] == "18"
    by_id = {t["techniqueID"]: t for t in layer["techniques"]}
    assert set(by_id) == {"T1110.001", "T1078"}
    assert by_id["T1110.001"]["score"] == 2
    assert by_id["T1110.001"]["comment"] == "KZ-CERT: credential-attack (2)"
    # rule b is classified by its brute-force technique; the comment counts the rules' classes
    assert by_id["T1078"]["comment"] == "KZ-CERT: credential-attack (1), network-attack (1)"
    for technique in layer["techniques"]:
        assert set(technique) >= {"techniqueID", "score", "comment", "enabled"}
        assert technique["techniqueID"][0] == "T"
    gradient = layer["gradient"]
    assert len(gradient["colors"]) >= 2 and gradient["maxValue"] > gradient["minValue"]
    assert gradient["maxValue"] == 2
    assert all({"label", "color"} <= set(item) for item in layer["legendItems"])
    json.dumps(layer)


def test_our_rule_pack_is_fully_classified() -> None:
    plan = load_plan([PACK])
    assert plan.rules and not plan.failures
    report = coverage_report(plan)
    assert report["unclassified"] == []
    assert report["override_problems"] == []
    for rule in plan.rules:
        c: Classification = classify(rule.meta)
        assert c.complete and c.source is not None, rule.meta.path


# --------------------------------------------------------------------------- the corpus


@pytest.mark.corpus
@pytest.mark.slow
def test_sigmahq_and_pack_coverage(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = load_plan([shared_data / "sigma" / "rules", PACK])
    report = coverage_report(plan)
    with capsys.disabled():
        print()
        print(render_text(report, limit=20))
    assert report["total"] >= 3000
    assert report["share_classified"] >= 0.95, report["unclassified"][:20]
    assert report["override_problems"] == []
    # every KZ-CERT class is backed by rules
    assert all(n > 0 for n in report["kz_cert"].values()), report["kz_cert"]
    # no single entry swallows the corpus: the mapping is not a catch-all
    biggest = max(v for k, v in report["by_source"].items() if k != "unclassified")
    assert biggest / report["total"] < 0.15
