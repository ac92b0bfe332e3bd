"""Loading Sigma rules from files and directories (parsed by pySigma) into a compiled plan,
reusing a plan cached on disk when the rules, the logsource map and the placeholders have not
changed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from sigma.collection import SigmaCollection
from sigma.exceptions import SigmaError
from sigma.modifiers import SigmaWideModifier, modifier_mapping

from qorgan import __version__
from qorgan.detection.compiler import PlanBuilder
from qorgan.detection.errors import DetectionError
from qorgan.detection.logsources import LogsourceMap
from qorgan.detection.plan import Plan, RuleFailure

# The Sigma specification lists `utf16le` as another name of `wide`; pySigma 2.0 lacks it.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

RULE_SUFFIXES = (".yml", ".yaml")
#: Bumped when the plan's shape or the compiler's output changes, to invalidate caches.
PLAN_FORMAT = 1
BUILTIN_RULES = Path(__file__).with_name("rules")


def default_cache_dir() -> Path:
    base = os.environ.get("QORGAN_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return (root / "qorgan" / "plans") if not os.environ.get("QORGAN_CACHE_DIR") else root


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
    """Compile the rules under ``paths``; with ``cache_dir``, reuse or store the plan there."""
    logsources = logsources or LogsourceMap.load()
    files = list(rule_files(paths))
    texts = [(f, f.read_bytes()) for f in files]
    digest = hashlib.sha256(f"qorgan {__version__} plan {PLAN_FORMAT}\n".encode())
    digest.update(logsources.text.encode())
    digest.update(repr(sorted((placeholders or {}).items())).encode())
    for path, data in texts:
        digest.update(str(path).encode() + b"\0" + hashlib.sha256(data).digest())
    key = digest.hexdigest()
    cached = cache_dir / f"{key}.pickle" if cache_dir else None
    if cached is not None and cached.exists():
        try:
            with cached.open("rb") as fh:
                plan = pickle.load(fh)
            if isinstance(plan, Plan) and plan.key == key:
                return plan
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # a damaged or stale cache entry is rebuilt
    builder = PlanBuilder(logsources, placeholders)
    for path, data in texts:
        add_rule_text(builder, data, str(path))
    plan = builder.build()
    plan.key = key
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump(plan, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(cached)
    return plan


def add_rule_text(builder: PlanBuilder, data: bytes | str, path: str) -> None:
    """Parse one rule file (one or more YAML documents) and add its rules to ``builder``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (SigmaError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        builder.plan.failures.append(RuleFailure(path, None, None, f"cannot parse: {exc}"))
        return
    attached = {id(e) for rule in collection.rules for e in getattr(rule, "errors", ())}
    for error in collection.errors:
        if id(error) not in attached:  # errors of no rule (a broken document) are still reported
            builder.plan.failures.append(RuleFailure(path, None, None, str(error)))
    for rule in collection.rules:
        builder.add(rule, path)


def compile_texts(texts: Iterable[str], **kwargs: object) -> Plan:
    """Compile rules given as YAML text (for tests and embedding)."""
    builder = PlanBuilder(**kwargs)  # type: ignore[arg-type]
    for n, text in enumerate(texts):
        add_rule_text(builder, text, f"<rule {n}>")
    return builder.build()
