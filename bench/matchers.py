"""Benchmark of multi-pattern literal matchers for the Sigma engine's per-field atoms.

    python bench/matchers.py [--repeats 5] [--large 50000] [--no-single-thread]

Measures how fast each candidate evaluates every literal atom (``contains``, ``prefix``,
``suffix``, ``eq``) of one field over a batch's distinct values, which is what
:class:`qorgan.detection.matchers.FieldMatcher` does for the engine. Patterns: the atoms of the
``CommandLine`` and ``Image`` fields in the compiled plan of ``../shared/data/sigma/rules/windows``.
Haystacks: the distinct, lower-cased values of those fields in the events of
``../shared/data/evtx-attack-samples``, and a larger variant (the values repeated, each copy with
a unique suffix, up to ``--large`` distinct strings).

Candidates, all producing for every atom the set of haystack indexes it matches (checked equal
before any timing):

* ``pyahocorasick``: ``FieldMatcher(atoms).match(uniques)`` (one automaton, one ``iter()`` per
  string, position checks for prefix/suffix, a dict for eq);
* ``polars per-atom``: one kernel call per atom on a ``pl.Series`` (``str.contains(literal=True)``,
  ``str.starts_with``, ``str.ends_with``, ``==``), then ``arg_true``;
* ``polars contains_any+per-atom``: ``str.contains_any`` of all literals as a prefilter, then the
  per-atom kernels on the surviving strings only;
* ``polars select``: one ``DataFrame.select`` with one expression per atom (parallel in Polars);
* ``polars find_many``: ``str.find_many`` + ``str.extract_many`` (overlapping Aho-Corasick in
  Rust, one call each), then position checks in Python;
* ``hyperscan``: one block-mode database (``^``/``\\z`` anchors for prefix, suffix and eq,
  ``SINGLEMATCH``), one ``scan`` per string with a Python callback;
* ``naive python``: per atom, a loop with ``in``/``startswith``/``endswith``/``==`` (small haystacks
  only: on the large ones it takes minutes).

The Polars candidates are timed twice: in this process (Polars' default thread pool) and in a
child process run with ``POLARS_MAX_THREADS=1`` (the engine's target is one core). Times are the
best of ``--repeats`` runs after a warm-up; a candidate slower than 1.5 s per run gets 3 runs,
and one slower than 4 s a single run (the total stays near two minutes). Exits with code 2
when ``../shared/data`` is absent. Figures and conclusion: ``bench/matchers.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RULES = SHARED / "sigma" / "rules" / "windows"
SAMPLES = SHARED / "evtx-attack-samples"
FIELDS = ("CommandLine", "Image")
OPS = ("contains", "prefix", "suffix", "eq")
SLOW = 1.5  # seconds: above this per run, only 3 runs (the first, checked, run included)
VERY_SLOW = 4.0  # seconds: above this per run, the first (checked) run only

#: (op, literal) per atom, in the order of the plan.
Patterns = list[tuple[str, str]]
#: What a candidate returns: atom index -> haystack indexes (any iterable), atoms may be absent.
Hits = Mapping[int, Iterable[int]] | Sequence[Iterable[int]]


@dataclass(slots=True)
class Case:
    field: str
    size: str  # "small" or "large"
    patterns: Patterns
    atoms: list[Any]  # the plan's Atom objects, same order as patterns
    haystack: list[str]


@dataclass(slots=True)
class Row:
    candidate: str
    field: str
    size: str
    strings: int
    patterns: int
    build_ms: float | None
    best_ms: float
    median_ms: float
    runs: int

    @property
    def per_string_us(self) -> float:
        return self.best_ms * 1000 / self.strings


# -- data -------------------------------------------------------------------------------------


def load_cases(large: int) -> list[Case]:
    from qorgan.detection.loader import load_plan
    from qorgan.telemetry import Quarantine
    from qorgan.telemetry.sources import read_paths

    started = time.perf_counter()
    plan = load_plan([RULES])
    print(f"plan of {RULES}: {len(plan.atoms)} atoms in {time.perf_counter() - started:.1f} s")
    values: dict[str, set[str]] = {f: set() for f in FIELDS}
    events = 0
    for batch in read_paths([SAMPLES], Quarantine()):
        for event in batch.events:
            events += 1
            for field in FIELDS:
                value = event.get(field)
                if isinstance(value, str):
                    values[field].add(value.lower())
    print(f"{events} events of {SAMPLES}")
    cases = []
    for field in FIELDS:
        atoms = [a for a in plan.atoms if a.field == field and a.op in OPS and not a.cased]
        patterns = [(a.op, a.value) for a in atoms]
        small = sorted(values[field])
        cases.append(Case(field, "small", patterns, atoms, small))
        cases.append(Case(field, "large", patterns, atoms, enlarge(small, large)))
    return cases


def enlarge(values: list[str], target: int) -> list[str]:
    """The values, then copies with a unique suffix, up to ``target`` distinct strings."""
    out = list(values)
    copy = 0
    while len(out) < target:
        copy += 1
        out.extend(f"{v} #{copy}" for v in values[: target - len(out)])
    return out


# -- candidates -------------------------------------------------------------------------------


def naive(patterns: Patterns, haystack: list[str]) -> list[list[int]]:
    out: list[list[int]] = []
    for op, lit in patterns:
        if op == "contains":
            out.append([i for i, h in enumerate(haystack) if lit in h])
        elif op == "prefix":
            out.append([i for i, h in enumerate(haystack) if h.startswith(lit)])
        elif op == "suffix":
            out.append([i for i, h in enumerate(haystack) if h.endswith(lit)])
        else:
            out.append([i for i, h in enumerate(haystack) if h == lit])
    return out


def build_aho(case: Case) -> Any:
    from qorgan.detection.matchers import FieldMatcher

    return FieldMatcher(list(enumerate(case.atoms)))


def run_aho(matcher: Any, haystack: list[str]) -> Hits:
    return matcher.match(haystack)


def build_series(case: Case) -> Any:
    import polars as pl

    return pl.Series("v", case.haystack, dtype=pl.String)


def _kernel(series: Any, op: str, lit: str) -> Any:
    if op == "contains":
        return series.str.contains(lit, literal=True)
    if op == "prefix":
        return series.str.starts_with(lit)
    if op == "suffix":
        return series.str.ends_with(lit)
    return series == lit


def polars_per_atom(patterns: Patterns, series: Any) -> list[list[int]]:
    return [_kernel(series, op, lit).arg_true().to_list() for op, lit in patterns]


def polars_prefiltered(patterns: Patterns, series: Any) -> list[list[int]]:
    """Prefilter: strings containing no literal at all match no contains/prefix/suffix atom
    (eq atoms still need the full haystack, for the empty string, but they are cheap)."""
    literals = sorted({lit for op, lit in patterns if lit})
    mask = series.str.contains_any(literals)
    kept = mask.arg_true()
    sub = series.filter(mask)
    back = kept.to_list()
    out: list[list[int]] = []
    for op, lit in patterns:
        if op == "eq" or not lit:
            out.append(_kernel(series, op, lit).arg_true().to_list())
        else:
            out.append([back[i] for i in _kernel(sub, op, lit).arg_true().to_list()])
    return out


def _expr(op: str, lit: str) -> Any:
    import polars as pl

    col = pl.col("v")
    if op == "contains":
        return col.str.contains(lit, literal=True)
    if op == "prefix":
        return col.str.starts_with(lit)
    if op == "suffix":
        return col.str.ends_with(lit)
    return col == lit


def build_select(case: Case) -> tuple[Any, list[Any]]:
    import polars as pl

    frame = pl.DataFrame({"v": case.haystack}, schema={"v": pl.String})
    exprs = [
        _expr(op, lit).arg_true().implode().alias(f"a{i}")
        for i, (op, lit) in enumerate(case.patterns)
    ]
    return frame, exprs


def polars_select(built: tuple[Any, list[Any]]) -> Sequence[Iterable[int]]:
    frame, exprs = built
    return frame.select(exprs).row(0)


def build_find_many(case: Case) -> tuple[Any, list[str], dict[str, list[tuple[int, int, int]]]]:
    """Distinct non-empty literals, and literal -> [(atom, kind, byte length)]; eq uses a dict."""
    series = build_series(case)
    by_literal: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
    kinds = {"contains": 0, "prefix": 1, "suffix": 2}
    for index, (op, lit) in enumerate(case.patterns):
        if op != "eq" and lit:
            by_literal[lit].append((index, kinds[op], len(lit.encode())))
    return series, sorted(by_literal), by_literal


def polars_find_many(built: tuple[Any, list[str], Any], patterns: Patterns) -> Hits:
    import polars as pl

    series, literals, by_literal = built
    frame = pl.DataFrame({"v": series}).select(
        pl.col("v").str.find_many(literals, overlapping=True).alias("at"),
        pl.col("v").str.extract_many(literals, overlapping=True).alias("lit"),
        pl.col("v").str.len_bytes().alias("n"),
    )
    hits: dict[int, set[int]] = defaultdict(set)
    for u, (starts, found, length) in enumerate(frame.iter_rows()):
        if not starts:
            continue
        for start, lit in zip(starts, found, strict=True):
            for atom, kind, size in by_literal[lit]:
                if (
                    kind == 0
                    or (kind == 1 and start == 0)
                    or (kind == 2 and start + size == length)
                ):
                    hits[atom].add(u)
    eq: dict[str, list[int]] = defaultdict(list)
    for index, (op, lit) in enumerate(patterns):
        if op == "eq":
            eq[lit].append(index)
    for u, text in enumerate(series.to_list()):
        for atom in eq.get(text, ()):
            hits[atom].add(u)
    return hits


def _hs_escape(literal: str) -> bytes:
    out = bytearray()
    for byte in literal.encode():
        if (48 <= byte <= 57) or (65 <= byte <= 90) or (97 <= byte <= 122):
            out.append(byte)
        else:
            out += b"\\x%02x" % byte
    return bytes(out)


def build_hyperscan(case: Case) -> tuple[Any, Any, list[list[int]], list[bytes]]:
    import hyperscan

    ids: dict[tuple[str, str], int] = {}
    atoms_of: list[list[int]] = []
    for index, key in enumerate(case.patterns):
        if key not in ids:
            ids[key] = len(atoms_of)
            atoms_of.append([])
        atoms_of[ids[key]].append(index)
    expressions, flags = [], []
    for op, lit in ids:
        body = _hs_escape(lit)
        expr = {"contains": body, "prefix": b"^" + body, "suffix": body + b"\\z"}.get(
            op, b"^" + body + b"\\z"
        )
        flag = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_DOTALL
        if not lit:
            flag |= hyperscan.HS_FLAG_ALLOWEMPTY
        expressions.append(expr)
        flags.append(flag)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=expressions,
        ids=list(range(len(expressions))),
        elements=len(expressions),
        flags=flags,
    )
    scratch = hyperscan.Scratch(db)
    encoded = [h.encode() for h in case.haystack]
    return db, scratch, atoms_of, encoded


def run_hyperscan(built: tuple[Any, Any, list[list[int]], list[bytes]]) -> Hits:
    db, scratch, atoms_of, encoded = built
    found: list[list[int]] = [[] for _ in atoms_of]

    def on_match(pid: int, start: int, end: int, flags: int, u: int) -> None:
        found[pid].append(u)

    scan = db.scan
    for u, data in enumerate(encoded):
        scan(data, match_event_handler=on_match, context=u, scratch=scratch)
    return {atom: us for pid, us in enumerate(found) if us for atom in atoms_of[pid]}


# -- harness ----------------------------------------------------------------------------------


def normalize(hits: Hits, count: int) -> list[frozenset[int]]:
    if isinstance(hits, Mapping):
        return [frozenset(hits.get(a, ())) for a in range(count)]
    out = [frozenset(h) for h in hits]
    assert len(out) == count, (len(out), count)
    return out


def runs_for(first: float, repeats: int) -> int:
    """Runs to take, given the first one's time: fewer for slow candidates (the 2-minute budget)."""
    if first > VERY_SLOW:
        return 1
    if first > SLOW:
        return min(repeats, 3)
    return repeats


def measure(
    name: str,
    case: Case,
    build: Callable[[], Any] | None,
    run: Callable[[Any], Hits],
    reference: list[frozenset[int]],
    repeats: int,
) -> Row:
    built_ms = None
    built = None
    if build is not None:
        started = time.perf_counter()
        built = build()
        built_ms = (time.perf_counter() - started) * 1000
    gc.collect()
    started = time.perf_counter()
    hits = run(built)
    first = time.perf_counter() - started
    result = normalize(hits, len(case.patterns))
    del hits
    if result != reference:
        wrong = [i for i, (a, b) in enumerate(zip(result, reference, strict=True)) if a != b]
        raise AssertionError(
            f"{name} disagrees on {len(wrong)} atoms, e.g. {case.patterns[wrong[0]]!r}"
        )
    # A fast candidate's first run is a warm-up; a slow one's counts as one of its runs.
    times = [first] if first > SLOW else []
    while len(times) < runs_for(first, repeats):
        gc.collect()
        started = time.perf_counter()
        run(built)
        times.append(time.perf_counter() - started)
    times.sort()
    row = Row(
        name,
        case.field,
        case.size,
        len(case.haystack),
        len(case.patterns),
        built_ms,
        times[0] * 1000,
        times[len(times) // 2] * 1000,
        len(times),
    )
    print(
        f"  {name:<40} {row.best_ms:10.1f} ms"
        f"  ({row.per_string_us:.2f} µs/string, {row.runs} runs)",
        flush=True,
    )
    return row


def heading(case: Case) -> str:
    return (
        f"{case.field} / {case.size}: {len(case.haystack)} strings, {len(case.patterns)} patterns"
    )


def polars_rows(
    cases: list[Case], references: list[list[frozenset[int]]], repeats: int, suffix: str
) -> list[Row]:
    rows = []
    for case, reference in zip(cases, references, strict=True):
        print(f"{heading(case)}{suffix}")
        pats = case.patterns
        rows.append(
            measure(
                f"polars per-atom{suffix}",
                case,
                lambda c=case: build_series(c),
                lambda s, p=pats: polars_per_atom(p, s),
                reference,
                repeats,
            )
        )
        rows.append(
            measure(
                f"polars contains_any+per-atom{suffix}",
                case,
                lambda c=case: build_series(c),
                lambda s, p=pats: polars_prefiltered(p, s),
                reference,
                repeats,
            )
        )
        rows.append(
            measure(
                f"polars select{suffix}",
                case,
                lambda c=case: build_select(c),
                polars_select,
                reference,
                repeats,
            )
        )
        rows.append(
            measure(
                f"polars find_many{suffix}",
                case,
                lambda c=case: build_find_many(c),
                lambda b, p=pats: polars_find_many(b, p),
                reference,
                repeats,
            )
        )
    return rows


def all_rows(cases: list[Case], repeats: int) -> tuple[list[Row], list[list[frozenset[int]]]]:
    rows: list[Row] = []
    references = []
    for case in cases:
        print(heading(case))
        pats = case.patterns
        # Reference: naive Python on small haystacks; pyahocorasick cross-checked on large ones,
        # where every other candidate must agree with it (and with naive on the small ones).
        if case.size == "small":
            reference = normalize(naive(pats, case.haystack), len(pats))
            rows.append(
                measure(
                    "naive python",
                    case,
                    None,
                    lambda _, c=case: naive(c.patterns, c.haystack),
                    reference,
                    repeats,
                )
            )
        else:
            reference = normalize(build_aho(case).match(case.haystack), len(pats))
            spot = [i for i in range(len(pats)) if i % 97 == 0]
            sample = normalize(naive([pats[i] for i in spot], case.haystack), len(spot))
            assert sample == [reference[i] for i in spot], (
                "pyahocorasick disagrees with naive python"
            )
        references.append(reference)
        rows.append(
            measure(
                "pyahocorasick (FieldMatcher)",
                case,
                lambda c=case: build_aho(c),
                run_aho_for(case),
                reference,
                repeats,
            )
        )
        rows.append(
            measure(
                "hyperscan",
                case,
                lambda c=case: build_hyperscan(c),
                run_hyperscan,
                reference,
                repeats,
            )
        )
    rows.extend(polars_rows(cases, references, repeats, ""))
    return rows, references


def run_aho_for(case: Case) -> Callable[[Any], Hits]:
    return lambda matcher: run_aho(matcher, case.haystack)


def single_thread(
    cases: list[Case], references: list[list[frozenset[int]]], repeats: int
) -> list[Row]:
    """Re-runs the Polars candidates in a child process with ``POLARS_MAX_THREADS=1``."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cases.pickle"
        out = Path(tmp) / "rows.json"
        with data.open("wb") as fh:
            pickle.dump((cases, references), fh)
        env = dict(os.environ, POLARS_MAX_THREADS="1")
        cmd = [sys.executable, __file__, "--child", str(data), str(out), "--repeats", str(repeats)]
        subprocess.run(cmd, env=env, check=True)
        return [Row(**r) for r in json.loads(out.read_text())]


def child(data: Path, out: Path, repeats: int) -> None:
    import polars as pl

    threads = os.environ.get("POLARS_MAX_THREADS")
    print(f"child: POLARS_MAX_THREADS={threads}, Polars thread pool {pl.thread_pool_size()}")
    with data.open("rb") as fh:
        cases, references = pickle.load(fh)
    rows = polars_rows(cases, references, repeats, " [1 thread]")
    out.write_text(json.dumps([{k: getattr(r, k) for k in Row.__slots__} for r in rows]))


def table(rows: list[Row]) -> str:
    lines = [
        "| candidate | field | haystack | strings | patterns | build ms | best ms | median ms"
        " | µs/string |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    order = {
        (f, s): i for i, (f, s) in enumerate((f, s) for f in FIELDS for s in ("small", "large"))
    }
    for r in sorted(rows, key=lambda r: (order[(r.field, r.size)], r.best_ms)):
        build = "" if r.build_ms is None else f"{r.build_ms:.1f}"
        lines.append(
            f"| {r.candidate} | {r.field} | {r.size} | {r.strings} | {r.patterns} | {build} "
            f"| {r.best_ms:.1f} | {r.median_ms:.1f} | {r.per_string_us:.2f} |"
        )
    return "\n".join(lines)


def versions() -> str:
    from importlib.metadata import version

    names = ("pyahocorasick", "polars", "hyperscan")
    return ", ".join(f"{n} {version(n)}" for n in names) + f", Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per candidate (best is reported)"
    )
    parser.add_argument(
        "--large", type=int, default=50_000, help="distinct strings of the large haystacks"
    )
    parser.add_argument(
        "--no-single-thread", action="store_true", help="skip the POLARS_MAX_THREADS=1 re-run"
    )
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.repeats)
        return 0
    if not SHARED.is_dir():
        print(
            f"skipped: {SHARED} is absent (needs sigma/rules and evtx-attack-samples)",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    print(versions(), f"; {os.cpu_count()} CPUs")
    cases = load_cases(args.large)
    rows, references = all_rows(cases, args.repeats)
    if not args.no_single_thread:
        rows.extend(single_thread(cases, references, args.repeats))
    print()
    print(table(rows))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
