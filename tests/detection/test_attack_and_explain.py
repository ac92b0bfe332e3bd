"""The ATT&CK names shipped with the package, the taxonomy's labels in three languages, and
which fields of an event a rule matched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qorgan.detection.attack import DEFAULT_PATH, load_attack
from qorgan.detection.classification import (
    CRIMINAL_CODE_ARTICLES,
    ClassificationError,
    load_taxonomy,
    parse_taxonomy,
)
from qorgan.detection.explain import explain, rule_meta
from qorgan.detection.loader import compile_texts

ROOT = Path(__file__).resolve().parents[2]


def test_attack_data_names_techniques_and_tactics() -> None:
    attack = load_attack()
    header = DEFAULT_PATH.read_text(encoding="utf-8")[:800]
    assert "The MITRE Corporation" in header and "scripts/attack_data.py" in header
    assert attack.version == "18.1" and len(attack.techniques) > 800
    brute = attack.technique("t1110.001")
    assert (brute.id, brute.full_name) == ("T1110.001", "Brute Force: Password Guessing")
    assert brute.url == "https://attack.mitre.org/techniques/T1110/001/"
    assert attack.technique("T1490").url == "https://attack.mitre.org/techniques/T1490/"
    tactic = attack.tactic("credential_access")
    assert (tactic.id, tactic.name) == ("TA0006", "Credential Access")
    assert tactic.url == "https://attack.mitre.org/tactics/TA0006/"
    # A newer release's ids: still an id and a link, no invented name.
    newer = attack.technique("T1685")
    assert newer.name is None and newer.url.endswith("/T1685/")
    assert attack.tactic("defense-impairment").name == "Defense Impairment"
    assert attack.tactic("command-and-control").name == "Command and Control"
    assert attack.technique("T1002").retired  # revoked, still named for old rules
    assert attack.technique("T1002").name == "Data Compressed"


def test_the_script_reads_a_stix_bundle(tmp_path: Path) -> None:
    """The generator on a (tiny) STIX bundle in MITRE's shape."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("attack_data", ROOT / "scripts/attack_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def ref(external_id: str) -> list[dict[str, str]]:
        return [{"source_name": "mitre-attack", "external_id": external_id}]

    bundle = {
        "type": "bundle",
        "objects": [
            {"type": "x-mitre-collection", "x_mitre_version": "19.0"},
            {"type": "attack-pattern", "name": "Brute Force", "external_references": ref("T1110")},
            {
                "type": "attack-pattern",
                "name": "Password Guessing",
                "external_references": ref("T1110.001"),
            },
            {
                "type": "attack-pattern",
                "name": "Old",
                "revoked": True,
                "external_references": ref("T1002"),
            },
            {
                "type": "x-mitre-tactic",
                "name": "Credential Access",
                "x_mitre_shortname": "credential-access",
                "external_references": ref("TA0006"),
            },
        ],
    }
    source = tmp_path / "enterprise-attack-19.0.json"
    source.write_text(json.dumps(bundle), encoding="utf-8")
    target = tmp_path / "attack.yml"
    assert module.main([str(source), "-o", str(target)]) == 0
    data = load_attack(target)
    assert data.version == "19.0" and data.retired == {"T1002"}
    assert data.technique("T1110.001").full_name == "Brute Force: Password Guessing"
    assert data.tactic("credential-access").id == "TA0006"


def test_taxonomy_labels_in_three_languages() -> None:
    taxonomy = load_taxonomy()
    for rsit_class, body in taxonomy.rsit.items():
        for language in ("kk", "ru", "en"):
            assert taxonomy.rsit_label(rsit_class, None, language)
            for rsit_type in body["types"]:
                assert taxonomy.rsit_label(rsit_class, rsit_type, language)
    assert taxonomy.rsit_label("intrusion-attempts", "brute-force", "en") == "Login attempts"
    assert taxonomy.rsit_label("intrusion-attempts", "brute-force", "ru") == "Попытки входа"
    assert taxonomy.rsit_label("nonsense", None, "en") is None
    assert set(taxonomy.articles) == CRIMINAL_CODE_ARTICLES
    assert taxonomy.article_name("205", "ru").startswith("Неправомерный доступ")
    assert taxonomy.article_name("205", "kk").startswith("Ақпаратқа")
    assert taxonomy.article_name("205", "en").startswith("Unlawful access")
    assert taxonomy.article_name("999", "en") is None


def test_incomplete_labels_are_refused() -> None:
    import yaml

    from qorgan.detection.classification import DEFAULT_PATH as TAXONOMY

    data = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    del data["rsit_labels"]["fraud/phishing"]
    with pytest.raises(ClassificationError, match="fraud/phishing"):
        parse_taxonomy(data)
    data = yaml.safe_load(TAXONOMY.read_text(encoding="utf-8"))
    del data["criminal_code_articles"]["213"]
    with pytest.raises(ClassificationError, match="205-213"):
        parse_taxonomy(data)


RULE = """
title: Shadow copies deleted
id: 11111111-2222-4333-8444-555555555555
author: Test Author
description: vssadmin deletes shadow copies.
falsepositives: [Backup software]
references: [https://example.org/vss]
logsource: {category: process_creation, product: windows}
detection:
  selection:
    Image|endswith: '\\vssadmin.exe'
    CommandLine|contains|all: [delete, shadows]
  filter:
    User|contains: backup
  condition: selection and not filter
level: high
"""


def test_explain_marks_matched_and_read_fields() -> None:
    plan = compile_texts([RULE])
    assert not plan.failures
    meta = rule_meta(plan, "11111111-2222-4333-8444-555555555555")
    assert meta is not None and meta.author == "Test Author"
    assert meta.falsepositives == ("Backup software",)
    assert meta.references == ("https://example.org/vss",)
    event = {
        "Image": "C:\\Windows\\System32\\vssadmin.exe",
        "CommandLine": "vssadmin delete shadows /all",
        "User": "AKIMAT\\admin",
        "ParentImage": "cmd.exe",
    }
    found = explain(plan, "11111111-2222-4333-8444-555555555555", event)
    assert found is not None
    states = {name: f.matched for name, f in found.items()}
    # User is read (by the filter, which did not hold), ParentImage is not read at all.
    assert states == {"CommandLine": True, "Image": True, "User": False}
    # A field whose condition did not hold is read, not matched.
    other = explain(plan, "11111111-2222-4333-8444-555555555555", {**event, "Image": "x.exe"})
    assert other is not None and other["Image"].matched is False
    assert explain(plan, "no-such-rule", event) is None
