"""Loading Sigma rules from files and directories (parsed by pySigma) into a compiled plan,
reusing a plan cached on disk when the rules, the logsource map and the placeholders have not
changed.

pySigma and the compiler are imported only when rules are compiled: a hunt on a cached plan,
and every worker of one, never needs them (they are a seventh of a hunt's start-up).
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from qorgan import __version__
from qorgan.detection.errors import DetectionError
from qorgan.detection.logsources import LogsourceMap
from qorgan.detection.plan import Plan, RuleFailure

if TYPE_CHECKING:
    from sigma.correlations import SigmaCorrelationRule

    from qorgan.detection.compiler import PlanBuilder

RULE_SUFFIXES = (".yml", ".yaml")
#: Bumped when the plan's shape or the compiler's output changes, to invalidate caches.
PLAN_FORMAT = 4
BUILTIN_RULES = Path(__file__).with_name("rules")


def default_cache_dir() -> Path:
    base = os.environ.get("QORGAN_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return (root / "qorgan" / "plans") if not os.environ.get("QORGAN_CACHE_DIR") else root


def cache_file(cache_dir: Path, key: str) -> Path:
    """Where the plan of ``key`` is cached under ``cache_dir``."""
    return cache_dir / f"{key}.pickle"


def rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.suffix in RULE_SUFFIXES and child.is_file():
                    yield child
        elif path.is_file():
            yield path
        else:
            raise DetectionError("no such rule file or directory", source=str(path))


def load_plan(
    paths: Iterable[Path],
    *,
    logsources: LogsourceMap | None = None,
    placeholders: dict[str, list[str]] | None = None,
    cache_dir: Path | None = None,
) -> Plan:
    """Compile the rules under ``paths``; with ``cache_dir``, reuse or store the plan there.

    The plan is cached under a digest of the rules' text. Reading thousands of rule files to
    compute it costs a tenth of a second, so the digest is also kept under one of the files'
    ``stat`` (size, modification and change times, inode: git's test for a changed file) and
    reused while none of them changed."""
    logsources = logsources or LogsourceMap.load()
    files = list(rule_files(paths))
    header = f"qorgan {__version__} plan {PLAN_FORMAT}\n{logsources.text}\n"
    header += repr(sorted((placeholders or {}).items()))
    known = cache_dir / f"{_stat_key(header, files)}.key" if cache_dir is not None else None
    if known is not None:
        try:
            key = known.read_text().strip()
        except OSError:
            key = ""
        if key and (plan := _cached(cache_file(cache_dir, key), key)) is not None:
            return plan
    texts = [(f, f.read_bytes()) for f in files]
    digest = hashlib.sha256(header.encode())
    for path, data in texts:
        digest.update(str(path).encode() + b"\0" + hashlib.sha256(data).digest())
    key = digest.hexdigest()
    cached = cache_file(cache_dir, key) if cache_dir else None
    if cached is not None and known is not None and (plan := _cached(cached, key)) is not None:
        _write(known, key.encode())
        return plan
    builder = _builder(logsources, placeholders)
    pending: Pending = []
    for path, data in texts:
        add_rule_text(builder, data, str(path), pending)
    for rule, rule_path, raw in pending:
        builder.add_correlation(rule, rule_path, raw)
    plan = builder.build()
    plan.key = key
    if cached is not None and known is not None:
        _write(cached, pickle.dumps(plan, protocol=pickle.HIGHEST_PROTOCOL))
        _write(known, key.encode())
    return plan


def _stat_key(header: str, files: list[Path]) -> str:
    digest = hashlib.sha256(header.encode())
    for path in files:
        st = path.stat()
        digest.update(
            f"{path}\0{st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}\n".encode()
        )
    return "stat-" + digest.hexdigest()


def _cached(path: Path, key: str) -> Plan | None:
    """The plan cached at ``path`` if it is the plan of ``key``; a damaged or stale cache
    entry is rebuilt. The collector is paused while hundreds of thousands of small objects
    are unpickled (a quarter of the time otherwise)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        with path.open("rb") as fh:
            plan = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None
    finally:
        if enabled:
            gc.enable()
    return plan if isinstance(plan, Plan) and plan.key == key else None


def _write(path: Path, data: bytes) -> None:
    """Write a cache file atomically (another hunt may be reading it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


Pending = list[tuple["SigmaCorrelationRule", str, dict[str, Any]]]


def _builder(*args: Any, **kwargs: Any) -> PlanBuilder:
    """A plan builder, pySigma loaded (and given the `utf16le` modifier: the Sigma
    specification lists it as another name of `wide`; pySigma 2.0 lacks it)."""
    from sigma.modifiers import SigmaWideModifier, modifier_mapping

    from qorgan.detection.compiler import PlanBuilder

    modifier_mapping.setdefault("utf16le", SigmaWideModifier)
    return PlanBuilder(*args, **kwargs)


def add_rule_text(
    builder: PlanBuilder, data: bytes | str, path: str, pending: Pending | None = None
) -> None:
    """Parse one rule file (one or more YAML documents) and add its rules to ``builder``.

    Correlation rules go to ``pending`` (or are compiled at once when it is None), since they
    may refer to rules of files not read yet."""
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.exceptions import SigmaError

    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        builder.plan.failures.append(RuleFailure(path, None, None, f"cannot parse: {exc}"))
        return
    correlations = [d for d in docs if isinstance(d, dict) and "correlation" in d]
    others = [d for d in docs if not (isinstance(d, dict) and "correlation" in d)]
    try:
        collection = SigmaCollection.from_dicts(others, collect_errors=True)
    except (SigmaError, ValueError, TypeError, AttributeError) as exc:
        builder.plan.failures.append(RuleFailure(path, None, None, f"cannot parse: {exc}"))
        return
    attached = {id(e) for rule in collection.rules for e in getattr(rule, "errors", ())}
    for error in collection.errors:
        if id(error) not in attached:  # errors of no rule (a broken document) are still reported
            builder.plan.failures.append(RuleFailure(path, None, None, str(error)))
    for rule in collection.rules:
        builder.add(rule, path)
    later: Pending = []
    for doc in correlations:
        # Parsed alone, not in a collection: references are resolved by the compiler across
        # every loaded file, not only this one.
        try:
            rule = SigmaCorrelationRule.from_dict(_without_range(doc), collect_errors=True)
        except (SigmaError, ValueError, TypeError, AttributeError) as exc:
            title = doc.get("title") if isinstance(doc.get("title"), str) else None
            builder.plan.failures.append(RuleFailure(path, None, title, f"cannot parse: {exc}"))
            continue
        raw = doc["correlation"]
        later.append((rule, path, raw if isinstance(raw, dict) else {}))
    if pending is None:
        for rule, rule_path, raw in later:
            builder.add_correlation(rule, rule_path, raw)
    else:
        pending.extend(later)


def _without_range(doc: Any) -> Any:
    """pySigma accepts one operator in a correlation condition; the compiler reads a range's
    second bound from the YAML itself, so pySigma is given the first bound only."""
    if not isinstance(doc, dict) or not isinstance(doc.get("correlation"), dict):
        return doc
    condition = doc["correlation"].get("condition")
    if isinstance(condition, dict):
        ops = [k for k in condition if k in ("gt", "gte", "lt", "lte", "eq", "neq")]
        if len(ops) > 1:
            trimmed = {k: v for k, v in condition.items() if k not in ops[1:]}
            return {**doc, "correlation": {**doc["correlation"], "condition": trimmed}}
    return doc


def compile_texts(texts: Iterable[str], **kwargs: object) -> Plan:
    """Compile rules given as YAML text (for tests and embedding)."""
    builder = _builder(**kwargs)
    pending: Pending = []
    for n, text in enumerate(texts):
        add_rule_text(builder, text, f"<rule {n}>", pending)
    for rule, rule_path, raw in pending:
        builder.add_correlation(rule, rule_path, raw)
    return builder.build()
