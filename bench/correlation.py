"""Benchmark of correlation: what 50 correlation rules add to a hunt, and whether correlation
state stays flat on a long stream.

    python bench/correlation.py [--events 2000000] [--stream 20000000]

1. Writes a synthetic JSON-lines stream of ten kinds of events (``bench/out/``; a tenth of them
   match the base rules),
   then runs ``qorgan hunt`` (one core, warm plan; best of three, interleaved) over it with 50
   base rules alone, and
   with the same base rules plus 50 correlation rules over them (event_count, value_count,
   temporal, temporal_ordered, value_sum, value_avg, value_percentile, value_median). Prints
   both times and the overhead.
   With ``--windows``, the same on a realistic hunt: 2,000,000 repeated EVTX attack samples,
   all SigmaHQ Windows rules, plus 50 correlations over the rules that fire most.
2. Feeds a ``Correlator`` directly with ``--stream`` observations of an endless stream (times
   increasing, 30 s lateness, 5,000 groups, one of 8 correlations per observation; their
   thresholds never fire, so state can only be bounded by eviction) and prints the number of
   buffered events and open windows and the process's RSS every tenth of the way: flat state
   means these stop growing.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import orjson

from hunt import measure, pinned

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
QORGAN = str(Path(sys.executable).parent / "qorgan")
KINDS = [
    ("event_count", "{gte: 20}", None),
    ("value_count", "{gte: 8, field: user}", None),
    ("temporal", None, None),
    ("temporal_ordered", None, None),
    ("value_sum", "{gte: 500000, field: bytes}", None),
    ("value_avg", "{gte: 9000, field: bytes}", None),
    ("value_percentile", "{gte: 9900, field: bytes, percentile: 95}", None),
    ("value_median", "{gte: 9000, field: bytes}", None),
]


def write_stream(path: Path, events: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    # Ten kinds of event, four of which the base rules look at: a tenth of the events feed
    # correlations (failed and successful logons, requests, queries among ordinary traffic).
    kinds = [
        "auth_failure",
        "auth_success",
        "http",
        "dns",
        "flow",
        "file",
        "process",
        "service",
        "registry",
        "mail",
    ]
    start = 1_795_000_000.0
    with path.open("wb") as out:
        lines = []
        for n in range(events):
            t = start + n * 0.01
            kind = kinds[rng.randrange(len(kinds))]
            lines.append(
                orjson.dumps(
                    {
                        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
                        + f".{n % 100:02d}Z",
                        "kind": kind,
                        "rule_key": f"k{n % 50}",
                        "src_ip": f"10.{rng.randrange(4)}.{rng.randrange(8)}.{rng.randrange(32)}",
                        "user": f"u{rng.randrange(40)}",
                        "bytes": rng.randrange(10_000),
                        "host": f"h{rng.randrange(16)}",
                    }
                )
                + b"\n"
            )
            if len(lines) >= 100_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)


def base_rules(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(50):
        kind = ["auth_failure", "auth_success", "http", "dns"][i % 4]
        (folder / f"base_{i:02d}.yml").write_text(
            f"title: Base {i}\nname: base_{i}\nid: 00000000-0000-4000-8000-{i:012d}\n"
            f"level: low\nlogsource: {{product: bench}}\n"
            f"detection:\n  sel:\n    kind: {kind}\n    rule_key: k{i}\n  condition: sel\n"
        )


def correlation_rules(folder: Path) -> None:
    for i in range(50):
        kind, condition, _ = KINDS[i % len(KINDS)]
        rules = (
            f"[base_{i}]" if not kind.startswith("temporal") else f"[base_{i}, base_{(i + 1) % 50}]"
        )
        lines = [
            f"title: Correlation {i}",
            f"id: 00000000-0000-4000-9000-{i:012d}",
            "level: high",
            "correlation:",
            f"  type: {kind}",
            f"  rules: {rules}",
            "  generate: true",
            "  group-by: [src_ip]",
            "  timespan: 5m",
        ]
        if condition:
            lines.append(f"  condition: {condition}")
        (folder / f"correlation_{i:02d}.yml").write_text("\n".join(lines) + "\n")


def hunt(
    data: Path,
    rules: Path,
    env: dict[str, str],
    *,
    bench_tag: bool = True,
    extra: Path | None = None,
    warm: bool = True,
) -> tuple[float, int, str]:
    cmd = [QORGAN, "hunt", str(data), "--rules", str(rules)]
    if extra is not None:
        cmd += ["--rules", str(extra)]
    if bench_tag:
        cmd += ["--logsource", "product=bench"]
    cmd += ["--output", os.devnull, "--no-progress", "--lateness", "1m"]
    if warm:
        subprocess.run(cmd, env=env, capture_output=True, check=False)  # cache the plan
    seconds, peak, code, stderr = measure(pinned(cmd), env)
    if code not in (0, 1):
        raise SystemExit(stderr)
    return seconds, peak, stderr


def stream_state(observations: int) -> None:
    from qorgan.detection.correlation import Correlator
    from qorgan.detection.plan import CompiledCorrelation, Plan, RuleMeta, Threshold

    meta = RuleMeta(id="s", title="s", level="high", status=None, tags=(), logsource=(), path="")
    plan = Plan(
        correlations=[
            CompiledCorrelation(
                meta=meta,
                type=kind,
                rules=(c,),
                group_by=("src_ip",),
                fields=(("src_ip",),),
                timespan=300.0,
                threshold=Threshold("gte", 1e18),  # never fires: state only grows
                value_field="bytes" if kind.startswith("value_") else None,
                percentile=95.0
                if kind == "value_percentile"
                else 50.0
                if kind == "value_median"
                else None,
            )
            for c, (kind, _, _) in enumerate(KINDS)
        ]
    )
    correlator = Correlator(plan, lateness=30.0)
    rng = random.Random(3)
    start = time.perf_counter()
    print("observations  buffered  windows  window-entries  rss-MiB")
    for n in range(observations):
        t = n * 0.01 + rng.uniform(0, 20)  # out of order within the lateness
        correlator.observe(n % 8, t, {"src_ip": n % 5000, "bytes": n % 10_000}, ("s", n, None, "r"))
        if n % 10_000 == 0:
            correlator.advance()
        if n % (observations // 10) == 0 and n:
            buffered = len(correlator.stream.pending)
            windows = sum(len(s.windows) for s in correlator.states)
            entries = sum(
                len(w if isinstance(w, deque) else w.entries)
                for s in correlator.states
                for w in s.windows.values()
            )
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{n:>12,}  {buffered:>8,}  {windows:>7,}  {entries:>14,}  {rss:>7.0f}")
    seconds = time.perf_counter() - start
    print(
        f"{observations:,} observations, each to one of 8 correlations, in {seconds:.1f} s "
        f"({observations / seconds:,.0f} per second)"
    )


def windows_correlations(folder: Path, rules_dir: Path, samples: Path) -> int:
    """50 correlation rules over the SigmaHQ Windows rules that fire most on the attack samples
    (all eight types, grouped by host), written to ``folder``; returns how many events of the
    samples feed them."""
    from collections import Counter

    from qorgan.detection.engine import Engine
    from qorgan.detection.loader import load_plan
    from qorgan.telemetry.quarantine import Quarantine
    from qorgan.telemetry.sources import read_paths

    plan = load_plan([rules_dir])
    engine = Engine(plan)
    fired: Counter[str] = Counter()
    for batch in read_paths([samples], Quarantine()):
        for r, rows in engine.match(batch):
            fired[plan.rules[r].meta.id] += len(rows)
    top = [rule_id for rule_id, _ in fired.most_common(50)]
    folder.mkdir(parents=True, exist_ok=True)
    for i, rule_id in enumerate(top):
        kind, condition, _ = KINDS[i % len(KINDS)]
        if kind.startswith("value_") and kind != "value_count":
            condition = "{gte: 1000, field: ProcessId}"
            if kind == "value_percentile":
                condition = "{gte: 1000, field: ProcessId, percentile: 95}"
        elif kind == "value_count":
            condition = "{gte: 3, field: Image}"
        elif kind == "event_count":
            condition = "{gte: 5}"
        other = top[(i + 1) % len(top)]
        rules = f"[{rule_id}, {other}]" if kind.startswith("temporal") else f"[{rule_id}]"
        lines = [
            f"title: Windows correlation {i}",
            f"id: 00000000-0000-4000-a000-{i:012d}",
            "level: high",
            "correlation:",
            f"  type: {kind}",
            f"  rules: {rules}",
            "  generate: true",
            "  group-by: [Computer]",
            "  timespan: 10m",
        ]
        if condition:
            lines.append(f"  condition: {condition}")
        (folder / f"correlation_{i:02d}.yml").write_text("\n".join(lines) + "\n")
    return sum(fired[r] for r in top)


def windows_scenario(env: dict[str, str], work: Path) -> None:
    """The same measurement on a realistic hunt: the 2,000,000 repeated EVTX attack samples of
    bench/hunt.py with all SigmaHQ Windows rules, plus 50 correlations over them."""
    from hunt import SHARED, convert, repeated

    rules_dir = SHARED / "sigma" / "rules" / "windows"
    base = OUT / "attack-samples.jsonl"
    if not base.exists():
        convert(SHARED / "evtx-attack-samples", base)
    data = repeated(base, 2_000_000)
    correlations = work / "windows-correlations"
    feeding = windows_correlations(correlations, rules_dir, base)
    for extra in ([], ["--rules", str(correlations)]):  # compile and cache both plans
        subprocess.run(
            [QORGAN, "hunt", str(base), "--rules", str(rules_dir), *extra, "--output", os.devnull],
            env=env,
            capture_output=True,
            check=False,
        )
    runs = []
    for _ in range(2):
        plain = hunt(data, rules_dir, env, bench_tag=False, warm=False)
        both = hunt(data, rules_dir, env, bench_tag=False, extra=correlations, warm=False)
        runs.append((plain, both))
    t_plain, _, _ = min((r[0] for r in runs), key=lambda r: r[0])
    t_corr, _, summary = min((r[1] for r in runs), key=lambda r: r[0])
    print(
        "windows scenario runs (s): "
        + ", ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs)
        + " (plain/corr)"
    )
    print(
        f"2,000,000 EVTX events, 2,407 SigmaHQ Windows rules: {t_plain:.2f} s; + 50 "
        f"correlations over the 50 rules firing most ({feeding:,} of 8,255 sample events "
        f"feed them): {t_corr:.2f} s; overhead {t_corr / t_plain - 1:+.1%}"
    )
    print("  summary: " + " ".join(summary.split("\n")[:3]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--stream", type=int, default=20_000_000)
    parser.add_argument("--windows", action="store_true", help="also the realistic scenario")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / f"synthetic-{args.events}.jsonl"
    if not data.exists():
        print(f"writing {data} ...")
        write_stream(data, args.events)
    work = Path(tempfile.mkdtemp(prefix="qorgan-bench-corr-"))
    env = {**os.environ, "QORGAN_CACHE_DIR": str(work / "cache")}
    plain, with_corr = work / "plain", work / "correlated"
    base_rules(plain)
    base_rules(with_corr)
    correlation_rules(with_corr)
    # The machine is shared and noisy: interleave three runs of each and keep the fastest.
    runs = [(hunt(data, plain, env), hunt(data, with_corr, env)) for _ in range(3)]
    t_plain, rss_plain, _ = min((r[0] for r in runs), key=lambda r: r[0])
    t_corr, rss_corr, summary = min((r[1] for r in runs), key=lambda r: r[0])
    print("runs (s): " + ", ".join(f"{a[0]:.2f}/{b[0]:.2f}" for a, b in runs) + " (plain/corr)")
    print(
        f"{args.events:,} events, 50 base rules: {t_plain:.2f} s "
        f"({args.events / t_plain:,.0f} ev/s), peak RSS {rss_plain / 2**20:.0f} MiB"
    )
    print(
        f"  + 50 correlation rules: {t_corr:.2f} s ({args.events / t_corr:,.0f} ev/s), "
        f"peak RSS {rss_corr / 2**20:.0f} MiB; overhead {t_corr / t_plain - 1:+.1%}"
    )
    print("  summary: " + " ".join(summary.split("\n")[:3]))
    if args.windows:
        windows_scenario(env, work)
    shutil.rmtree(work, ignore_errors=True)
    if args.stream:
        stream_state(args.stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
