"""Every rule and correlation of the built-in pack fires on a realistic sample and stays quiet
on its benign neighbours.

The samples (``tests/data/rule_pack/``, described in its README) are log files in the formats
Qorgan reads: syslog, access logs (combined and IIS W3C), Windows events as the ``evtx`` parser
gives them, Zeek JSON. ``cases.yml`` names, per rule, the records where it must fire and the
neighbours where it must not. Each file goes through the real reader, engine and hunt, alone
(correlation windows never span two files).

A rule added to the pack without a case, or a case without a fire or a neighbour, fails here.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from qorgan.detection.alerts import Alert
from qorgan.detection.correlation import epoch
from qorgan.detection.engine import Engine
from qorgan.detection.hunt import Emission, run_hunt
from qorgan.detection.loader import BUILTIN_RULES, load_plan
from qorgan.detection.plan import CompiledCorrelation, Plan
from qorgan.telemetry import Quarantine
from qorgan.telemetry.sources import read_paths

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "rule_pack"
CASES: dict[str, dict[str, Any]] = yaml.safe_load((SAMPLES / "cases.yml").read_text("utf-8"))
#: Files of the sample folder that are not samples.
NOT_SAMPLES = {"README.md", "cases.yml", "make_samples.py"}


def pack_rules() -> dict[str, str]:
    """Rule id -> title, for every document of the pack (read here, so that the parameters of
    the tests below exist before any plan is compiled)."""
    out = {}
    for path in sorted(BUILTIN_RULES.rglob("*.yml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            out[str(doc["id"])] = doc["title"]
    return out


PACK = pack_rules()


def sample_files() -> list[str]:
    return sorted(
        str(p.relative_to(SAMPLES))
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.name not in NOT_SAMPLES and "__pycache__" not in p.parts
    )


def records(spec: list[Any]) -> set[int]:
    """[1, "3-5"] -> {1, 3, 4, 5}."""
    out: set[int] = set()
    for item in spec:
        if isinstance(item, int):
            out.add(item)
        else:
            first, _, last = str(item).partition("-")
            out.update(range(int(first), int(last) + 1))
    return out


@dataclass
class Observed:
    """One sample file read, matched and hunted alone."""

    records: set[int] = field(default_factory=set)
    quarantined: int = 0
    #: rule id -> (record, epoch seconds, event) of every event the rule's detection matched
    matches: dict[str, list[tuple[int, float | None, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    #: rule id -> records of its single-event alerts
    alerts: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    #: correlation id -> values of the group-by field of its alerts
    groups: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


@pytest.fixture(scope="module")
def plan() -> Plan:
    return load_plan([BUILTIN_RULES])


@pytest.fixture(scope="module")
def observed(plan: Plan) -> dict[str, Observed]:
    engine = Engine(plan)
    out: dict[str, Observed] = {}
    for name in sample_files():
        path = SAMPLES / name
        seen = out[name] = Observed()
        quarantine = Quarantine()
        for batch in read_paths([path], quarantine):
            seen.records.update(batch.records)
            for r, rows in engine.match(batch):
                rule_id = plan.rules[r].meta.id
                for i in rows.tolist():
                    seen.matches[rule_id].append(
                        (batch.records[i], epoch(batch.times[i]), batch.events[i])
                    )
        seen.quarantined = quarantine.count
        alerts: list[Alert] = []
        run_hunt([path], plan, sink=alerts.extend, quarantine=Quarantine())
        for alert in alerts:
            if alert.format == "correlation":
                (value,) = alert.event.values()
                seen.groups[alert.rule.id].add(str(value))
            else:
                seen.alerts[alert.rule.id].add(alert.record)
    return out


# -- the cases cover the pack -------------------------------------------------------------------


def test_every_pack_rule_has_a_case_with_fires_and_neighbours() -> None:
    missing = {rule_id: title for rule_id, title in PACK.items() if rule_id not in CASES}
    assert not missing, f"rules of the pack without samples in cases.yml: {missing}"
    unknown = set(CASES) - set(PACK)
    assert not unknown, f"cases.yml names rules that are not in the pack: {unknown}"
    files = set(sample_files())
    for rule_id, case in CASES.items():
        assert case["title"] == PACK[rule_id], rule_id
        assert case.get("fires"), f"{case['title']}: no sample where it fires"
        assert case.get("near"), f"{case['title']}: no benign neighbour"
        for kind in ("fires", "near"):
            for name, items in (case.get(kind) or {}).items():
                assert name in files, f"{case['title']}: no sample file {name}"
                assert items, f"{case['title']}: {kind} {name} is empty"
        for name in set(case["fires"]) & set(case["near"]):
            both = listed(case["fires"][name]) & listed(case["near"][name])
            assert not both, f"{case['title']}: {both} both fire and are neighbours"


def records_or_groups(items: list[Any]) -> set[str]:
    return {str(i) for i in items}


def listed(items: list[Any]) -> set[Any]:
    """Records (ranges expanded) or group values, whichever the list holds."""
    if all(isinstance(i, int) or re.fullmatch(r"\d+-\d+", str(i)) for i in items):
        return records(items)
    return records_or_groups(items)


def test_every_sample_file_is_read_whole_and_used(observed: dict[str, Observed]) -> None:
    used = {
        name
        for case in CASES.values()
        for kind in ("fires", "near")
        for name in case.get(kind) or {}
    }
    assert set(observed) == used, "sample files that no case uses, or cases without a file"
    for name, seen in observed.items():
        assert seen.records, name
        assert seen.quarantined == 0, f"{name}: {seen.quarantined} records quarantined"


# -- each rule on its samples -------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", sorted(PACK, key=PACK.get), ids=lambda i: PACK[i])
def test_rule_on_its_samples(rule_id: str, plan: Plan, observed: dict[str, Observed]) -> None:
    case = CASES.get(rule_id)
    assert case is not None, f"{PACK[rule_id]} ({rule_id}) has no samples in cases.yml"
    assert case.get("fires") and case.get("near"), f"{PACK[rule_id]}: fires and near are needed"
    correlation = next((c for c in plan.correlations if c.meta.id == rule_id), None)
    if correlation is not None:
        check_correlation(correlation, case, plan, observed)
        return
    index = next(i for i, r in enumerate(plan.rules) if r.meta.id == rule_id)
    silent = index not in Emission.of(plan).rules
    for name, seen in observed.items():
        fires = records(case["fires"].get(name, []))
        matched = {record for record, _, _ in seen.matches.get(rule_id, [])}
        near = records((case.get("near") or {}).get(name, []))
        assert near <= seen.records, f"{name}: neighbours {near - seen.records} are no records"
        assert not near & matched, f"{name}: fires on its neighbours {sorted(near & matched)}"
        if silent:
            # Informational base rules match, but raise no alert of their own.
            assert fires <= matched, f"{name}: does not match {sorted(fires - matched)}"
            assert not seen.alerts.get(rule_id), f"{name}: a silent base rule raised alerts"
        else:
            assert seen.alerts.get(rule_id, set()) == fires, name
            assert matched == fires, name


def check_correlation(
    correlation: CompiledCorrelation,
    case: dict[str, Any],
    plan: Plan,
    observed: dict[str, Observed],
) -> None:
    (group_field,) = correlation.group_by
    threshold = correlation.threshold
    assert threshold.op == "gte" and threshold.upper is None, "extend the neighbour check"
    bases = [plan.rules[i].meta.id for i in correlation.rules]
    for name, seen in observed.items():
        fires = records_or_groups(case["fires"].get(name, []))
        assert seen.groups.get(correlation.meta.id, set()) == fires, name
        for group in records_or_groups(case["near"].get(name, [])):
            events = {
                base: [
                    (t, e)
                    for _, t, e in seen.matches.get(base, [])
                    if str(e.get(group_field)) == group
                ]
                for base in bases
            }
            if correlation.type == "temporal_ordered":
                # Both steps happened for the group, in the wrong order or too far apart.
                assert all(events.values()), f"{name}: neighbour {group} lacks a step"
                continue
            timed = sorted(
                (pair for pairs in events.values() for pair in pairs), key=lambda p: p[0]
            )
            peak = window_peak(timed, correlation.timespan, correlation.value_field)
            assert peak == threshold.value - 1, (
                f"{name}: neighbour {group} reaches {peak}, not just below {threshold.value}"
            )


def window_peak(
    events: list[tuple[float, dict[str, Any]]], span: float, value_field: str | None
) -> int:
    """The largest number of events (or of distinct ``value_field`` values) within any window
    [t - span, t] ending at an event: a plain reading of the correlation's aggregate."""
    best = 0
    for t, _ in events:
        window = [e for u, e in events if t - span <= u <= t]
        size = len({str(e.get(value_field)) for e in window}) if value_field else len(window)
        best = max(best, size)
    return best


# -- the generated samples are up to date ------------------------------------------------------


def test_generated_samples_are_what_make_samples_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, content in module.outputs():
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        assert data == content, f"{path.relative_to(SAMPLES)}: run make_samples.py"
