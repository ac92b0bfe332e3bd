"""Coverage of a rule plan: how the loaded rules fall into KZ-CERT, RSIT and ATT&CK.

Answers the questions a SOC lead and KZ-CERT ask of a rule set: which incident classes can we
detect at all, how many rules back each class and technique, and which rules would raise alerts
that nobody can classify. Pure: works on a compiled plan, imports no web or database code.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from qorgan.detection.classification import Classification, Taxonomy, classify, load_taxonomy
from qorgan.detection.plan import Plan, RuleMeta

#: Layer file format and Navigator version we write (ATT&CK Navigator layer format 4.5).
LAYER_FORMAT = "4.5"
NAVIGATOR_VERSION = "5.2.0"


def _classified(plan: Plan, taxonomy: Taxonomy) -> list[tuple[RuleMeta, Classification]]:
    """Each rule's metadata with its classification (classify caches per rule)."""
    return [(rule.meta, classify(rule.meta, taxonomy)) for rule in plan.rules]


def coverage_report(plan: Plan, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
    """Counts per class, tactic and source, the share classified, and the unclassified rules.

    ``share_classified`` counts rules that have both a KZ-CERT class and an RSIT class: one
    without the other cannot be reported to KZ-CERT and to CSIRT partners alike.
    """
    taxonomy = taxonomy or load_taxonomy()
    rows = _classified(plan, taxonomy)
    total = len(rows)
    complete = sum(1 for _, c in rows if c.complete)

    kz_cert: dict[str, int] = dict.fromkeys(taxonomy.kz_cert, 0)
    rsit: dict[str, dict[str, Any]] = {}
    tactics: Counter[str] = Counter()
    techniques: Counter[str] = Counter()
    articles: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    entry_kind = {f"mapping:{e.id}": e.kind for e in taxonomy.entries}
    unclassified: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []

    for meta, c in rows:
        if c.kz_cert:
            kz_cert[c.kz_cert] = kz_cert.get(c.kz_cert, 0) + 1
        if c.rsit_class:
            bucket = rsit.setdefault(c.rsit_class, {"total": 0, "types": {}})
            bucket["total"] += 1
            if c.rsit_type:
                bucket["types"][c.rsit_type] = bucket["types"].get(c.rsit_type, 0) + 1
        tactics.update(c.tactics)
        techniques.update(c.techniques)
        articles.update(c.criminal_code)
        sources[c.source or "unclassified"] += 1
        if c.source is None:
            kinds["unclassified"] += 1
        elif c.source.startswith("mapping:"):
            kinds[entry_kind.get(c.source, "mapping")] += 1
        else:
            kinds["rule"] += 1
        if not c.complete:
            unclassified.append(
                {
                    "path": meta.path,
                    "id": meta.id,
                    "title": meta.title,
                    "tags": list(meta.tags),
                    "logsource": dict(meta.logsource),
                }
            )
        if c.problems:
            problems.append(
                {
                    "path": meta.path,
                    "id": meta.id,
                    "title": meta.title,
                    "problems": list(c.problems),
                }
            )

    return {
        "total": total,
        "classified": complete,
        "share_classified": complete / total if total else 0.0,
        "failures": len(plan.failures),
        "kz_cert": kz_cert,
        "rsit": {k: rsit[k] for k in sorted(rsit, key=lambda k: (-rsit[k]["total"], k))},
        "tactics": dict(tactics.most_common()),
        "techniques": len(techniques),
        "criminal_code": dict(sorted(articles.items())),
        "by_match": dict(kinds.most_common()),
        "by_source": dict(sources.most_common()),
        "unclassified": unclassified,
        "override_problems": problems,
    }


def navigator_layer(
    plan: Plan,
    name: str,
    *,
    taxonomy: Taxonomy | None = None,
    attack_version: str | None = None,
) -> dict[str, Any]:
    """An ATT&CK Navigator layer (format 4.5): score = rules per technique, comment = classes.

    ``attack_version`` is left out by default so the Navigator uses its current ATT&CK release,
    which matches SigmaHQ (it follows current ATT&CK ids such as T1685).
    """
    taxonomy = taxonomy or load_taxonomy()
    scores: Counter[str] = Counter()
    classes: dict[str, Counter[str]] = {}
    for _, c in _classified(plan, taxonomy):
        for technique in c.techniques:
            scores[technique] += 1
            classes.setdefault(technique, Counter())[c.kz_cert or "unclassified"] += 1
    techniques = [
        {
            "techniqueID": technique,
            "score": scores[technique],
            "comment": "KZ-CERT: "
            + ", ".join(f"{k} ({n})" for k, n in sorted(classes[technique].items())),
            "enabled": True,
            "showSubtechniques": False,
        }
        for technique in sorted(scores)
    ]
    top = max(scores.values(), default=0)
    versions = {"navigator": NAVIGATOR_VERSION, "layer": LAYER_FORMAT}
    if attack_version:
        versions = {"attack": attack_version, **versions}
    return {
        "name": name,
        "versions": versions,
        "domain": "enterprise-attack",
        "description": (
            f"Qorgan detection coverage: {len(plan.rules)} rules; score = number of rules that "
            "name the technique; comment = their KZ-CERT classes."
        ),
        "sorting": 3,
        "layout": {"layout": "side", "showID": True, "showName": True},
        "hideDisabled": False,
        "techniques": techniques,
        "gradient": {
            "colors": ["#ffffff", "#66b1ff", "#08306b"],
            "minValue": 0,
            "maxValue": max(top, 1),
        },
        "legendItems": [
            {"label": "no rule", "color": "#ffffff"},
            {"label": f"{max(top, 1)} rules", "color": "#08306b"},
        ],
        "metadata": [{"name": "generator", "value": "qorgan rules coverage"}],
    }


def render_text(
    report: dict[str, Any], *, taxonomy: Taxonomy | None = None, limit: int = 50
) -> str:
    """A plain-text summary for a terminal; lists at most ``limit`` unclassified rules."""
    taxonomy = taxonomy or load_taxonomy()
    total = report["total"]

    def pct(n: int) -> str:
        return f"{100 * n / total:5.1f}%" if total else "    -"

    lines = [
        f"Rules: {total}   classified (KZ-CERT and RSIT): {report['classified']} "
        f"({100 * report['share_classified']:.2f}%)   compile failures: {report['failures']}",
        "",
        "KZ-CERT class",
    ]
    for class_id, n in report["kz_cert"].items():
        label = taxonomy.kz_cert.get(class_id, {}).get("en", "")
        lines.append(f"  {class_id:<22} {n:>6} {pct(n)}  {label}")
    lines += ["", "RSIT class / type"]
    for class_id, body in report["rsit"].items():
        lines.append(f"  {class_id:<40} {body['total']:>6} {pct(body['total'])}")
        for type_id, n in sorted(body["types"].items(), key=lambda kv: -kv[1]):
            lines.append(f"    {type_id:<38} {n:>6}")
    lines += ["", "ATT&CK tactic (rules tagged)"]
    for tactic, n in report["tactics"].items():
        lines.append(f"  {tactic:<40} {n:>6}")
    lines.append(f"  distinct techniques: {report['techniques']}")
    lines += ["", "Criminal Code, chapter 7 (candidate articles)"]
    for article, n in report["criminal_code"].items():
        lines.append(f"  art. {article:<35} {n:>6}")
    lines += ["", "Classified by"]
    for kind, n in report["by_match"].items():
        lines.append(f"  {kind:<40} {n:>6}")
    unclassified = report["unclassified"]
    lines += ["", f"Unclassified rules: {len(unclassified)}"]
    for row in unclassified[:limit]:
        lines.append(f"  {row['path']}  [{row['id']}] {row['title']}")
    if len(unclassified) > limit:
        lines.append(f"  ... and {len(unclassified) - limit} more")
    if report["override_problems"]:
        lines += ["", f"Refused rule overrides: {len(report['override_problems'])}"]
        for row in report["override_problems"][:limit]:
            lines.append(f"  {row['path']}: {'; '.join(row['problems'])}")
    return "\n".join(lines) + "\n"
