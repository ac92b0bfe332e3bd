"""Classification of detection rules: KZ-CERT class, ENISA RSIT, ATT&CK and Criminal Code articles.

Every alert carries the incident classes that the national incident response service (KZ-CERT)
and CSIRT partners (ENISA RSIT) use, so that an alert can become an incident and a report
without an analyst re-typing its class. The mapping is declarative data reviewed by analysts
(``classification.yml`` next to this module); this module only loads, validates and applies it.
It is pure: no web or database code, so the CLI, the pipeline and tests share it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qorgan.detection.errors import DetectionError
from qorgan.detection.plan import RuleMeta

log = logging.getLogger(__name__)

#: The reviewed mapping shipped with the package.
DEFAULT_PATH = Path(__file__).with_name("classification.yml")

LANGUAGES = ("kk", "ru", "en")
LOGSOURCE_KEYS = ("category", "product", "service")
MATCH_KEYS = ("techniques", "tactics", "tags", *LOGSOURCE_KEYS)
RESULT_KEYS = ("kz_cert", "rsit_class", "rsit_type", "criminal_code")
ENTRY_KEYS = frozenset({"id", "why", *MATCH_KEYS, *RESULT_KEYS})
#: Custom rule attributes that override the mapping.
OVERRIDE_KEYS = ("kz_cert", "rsit", "criminal_code")

_TECHNIQUE = re.compile(r"^t\d{4}(\.\d{3})?$")
_ARTICLE = re.compile(r"^\d{3}$")
#: Chapter 7 of the Criminal Code: the articles an entry may name.
CRIMINAL_CODE_ARTICLES = frozenset(str(n) for n in range(205, 214))
#: Tags under ``attack.`` that are neither tactics nor techniques: groups, software, data sources.
_NOT_TACTIC = re.compile(r"^(t|g|s|ds|m|c|ta)\d{4}")


class ClassificationError(DetectionError):
    """The classification mapping is malformed; names the file and the offending entry."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One mapping entry, compiled for matching."""

    id: str
    why: str
    index: int
    techniques: tuple[str, ...]
    tactics: frozenset[str]
    tags: tuple[str, ...]
    logsource: tuple[tuple[str, frozenset[str]], ...]
    kz_cert: str
    rsit_class: str
    rsit_type: str
    criminal_code: tuple[str, ...]

    @property
    def kind(self) -> str:
        """technique / tactic / logsource / tag: which group of the mapping the entry is in."""
        if self.techniques:
            return "technique"
        if self.tactics:
            return "tactic"
        if self.logsource:
            return "logsource"
        return "tag"

    def matches(
        self,
        techniques: tuple[str, ...],
        tactics: frozenset[str],
        tags: tuple[str, ...],
        logsource: Mapping[str, str],
    ) -> bool:
        """True when every key the entry names matches (AND), each by any of its values (OR)."""
        if self.techniques and not any(
            t == want or t.startswith(want + ".") for t in techniques for want in self.techniques
        ):
            return False
        if self.tactics and not (self.tactics & tactics):
            return False
        if self.tags and not any(
            _tag_matches(pattern, tag) for pattern in self.tags for tag in tags
        ):
            return False
        return all(logsource.get(key, "").lower() in values for key, values in self.logsource)


def _tag_matches(pattern: str, tag: str) -> bool:
    if pattern.endswith("*"):
        return tag.startswith(pattern[:-1])
    return tag == pattern


@dataclass(frozen=True, slots=True, eq=False)
class Taxonomy:
    """The validated mapping: class lists and ordered entries.

    Compared and hashed by identity: it is loaded once and is part of the classify cache key.
    """

    kz_cert: Mapping[str, Mapping[str, str]]
    rsit: Mapping[str, Mapping[str, Any]]
    entries: tuple[Entry, ...]
    source: str = "<memory>"
    rsit_aliases: Mapping[str, str] = field(default_factory=dict)
    #: ``class`` and ``class/type`` -> {kk, ru}; English is the RSIT label itself.
    rsit_labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Article number -> {kk, ru, en} name, for the articles of chapter 7.
    articles: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def rsit_types(self, rsit_class: str) -> Mapping[str, str]:
        return self.rsit.get(rsit_class, {}).get("types", {})

    def rsit_label(self, rsit_class: str, rsit_type: str | None, language: str) -> str | None:
        """The class's (or, with ``rsit_type``, the type's) label in ``language``; None for an
        id the taxonomy does not know. Falls back to the English label."""
        body = self.rsit.get(rsit_class)
        if body is None:
            return None
        if rsit_type is None:
            english = body["label"]
            key = rsit_class
        else:
            english = body["types"].get(rsit_type)
            if english is None:
                return None
            key = f"{rsit_class}/{rsit_type}"
        if language == "en":
            return str(english)
        return str(self.rsit_labels.get(key, {}).get(language) or english)

    def article_name(self, article: str, language: str) -> str | None:
        """The name of a Criminal Code article in ``language`` (None when unknown)."""
        names = self.articles.get(str(article))
        return str(names.get(language) or names.get("en")) if names else None


@dataclass(frozen=True, slots=True)
class Classification:
    """The classes of one rule, as alerts and incidents carry them.

    ``source`` is ``"rule"`` when the rule declared its classes, ``"mapping:<entry id>"`` when the
    mapping gave them, ``"rule+mapping:<entry id>"`` when the rule declared only some fields, and
    None when the rule is unclassified. ``problems`` lists rule overrides that were refused.
    """

    kz_cert: str | None
    rsit_class: str | None
    rsit_type: str | None
    criminal_code: tuple[str, ...]
    techniques: tuple[str, ...]
    tactics: tuple[str, ...]
    source: str | None
    problems: tuple[str, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Both a KZ-CERT class and an RSIT class: what the coverage figure counts."""
        return self.kz_cert is not None and self.rsit_class is not None

    def to_dict(self, taxonomy: Taxonomy | None = None) -> dict[str, Any]:
        """The JSON shape stored on alerts, with the KZ-CERT labels in the three languages."""
        taxonomy = taxonomy or load_taxonomy()
        label = taxonomy.kz_cert.get(self.kz_cert) if self.kz_cert else None
        return {
            "kz_cert": self.kz_cert,
            "kz_cert_label": dict(label) if label else None,
            "rsit": {"class": self.rsit_class, "type": self.rsit_type},
            "criminal_code": list(self.criminal_code),
            "attack": {"techniques": list(self.techniques), "tactics": list(self.tactics)},
            "source": self.source,
        }


# --------------------------------------------------------------------------- loading


@functools.cache
def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Load and validate the mapping once per path (the packaged one by default)."""
    path = path or DEFAULT_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ClassificationError(f"{path}: cannot read the classification mapping: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ClassificationError(f"{path}: not valid YAML: {exc}") from exc
    return parse_taxonomy(data, source=str(path))


def parse_taxonomy(data: Any, *, source: str = "<memory>") -> Taxonomy:
    """Validate the mapping document; every mistake is refused with where and why."""

    def fail(message: str) -> ClassificationError:
        return ClassificationError(f"{source}: {message}")

    if not isinstance(data, dict):
        raise fail("the document must be a mapping with kz_cert, rsit and mapping")
    missing = [key for key in ("kz_cert", "rsit", "mapping") if key not in data]
    if missing:
        raise fail(f"missing section(s): {', '.join(missing)}")

    kz_cert = data["kz_cert"]
    if not isinstance(kz_cert, dict) or not kz_cert:
        raise fail("kz_cert must map class ids to labels")
    for class_id, labels in kz_cert.items():
        if not isinstance(labels, dict) or any(
            not isinstance(labels.get(lang), str) or not labels[lang].strip() for lang in LANGUAGES
        ):
            raise fail(f"kz_cert class {class_id!r} needs non-empty labels kk, ru and en")

    rsit = data["rsit"]
    if not isinstance(rsit, dict) or not rsit:
        raise fail("rsit must map class ids to {label, types}")
    for class_id, body in rsit.items():
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("label"), str)
            or not isinstance(body.get("types"), dict)
            or not body["types"]
            or not all(isinstance(v, str) for v in body["types"].values())
        ):
            raise fail(f"rsit class {class_id!r} needs a label and a non-empty types mapping")

    aliases = data.get("rsit_aliases") or {}
    if not isinstance(aliases, dict):
        raise fail("rsit_aliases must map <class>/<type> to <class>/<type>")
    for old, new in aliases.items():
        parts = new.split("/") if isinstance(new, str) else []
        if len(parts) != 2 or parts[1] not in rsit.get(parts[0], {}).get("types", {}):
            raise fail(f"rsit_aliases {old!r}: {new!r} is not <class>/<type> of the RSIT taxonomy")

    raw_entries = data["mapping"]
    if not isinstance(raw_entries, list) or not raw_entries:
        raise fail("mapping must be a non-empty list of entries")
    entries: list[Entry] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_entries):
        entry = _parse_entry(raw, index, kz_cert, rsit, fail)
        if entry.id in seen:
            raise fail(f"mapping entry {index}: duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return Taxonomy(
        kz_cert=kz_cert,
        rsit=rsit,
        entries=tuple(entries),
        source=source,
        rsit_aliases=aliases,
        rsit_labels=_rsit_labels(data.get("rsit_labels"), rsit, fail),
        articles=_articles_names(data.get("criminal_code_articles"), fail),
    )


def _rsit_labels(
    raw: Any, rsit: Mapping[str, Any], fail: Callable[[str], ClassificationError]
) -> dict[str, dict[str, str]]:
    """Kazakh and Russian labels of every RSIT class and type (optional section; when given it
    must be complete, so no label silently falls back to English)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail("rsit_labels must map <class> and <class>/<type> to {kk, ru}")
    wanted = {*rsit, *(f"{c}/{t}" for c, body in rsit.items() for t in body["types"])}
    unknown = sorted(set(map(str, raw)) - wanted)
    if unknown:
        raise fail(f"rsit_labels names unknown classes or types: {', '.join(unknown)}")
    missing = sorted(wanted - set(map(str, raw)))
    if missing:
        raise fail(f"rsit_labels lacks: {', '.join(missing)}")
    out: dict[str, dict[str, str]] = {}
    for key, labels in raw.items():
        if not isinstance(labels, dict) or any(
            not isinstance(labels.get(lang), str) or not labels[lang].strip()
            for lang in ("kk", "ru")
        ):
            raise fail(f"rsit_labels {key!r} needs non-empty kk and ru labels")
        out[str(key)] = {lang: labels[lang].strip() for lang in ("kk", "ru")}
    return out


def _articles_names(
    raw: Any, fail: Callable[[str], ClassificationError]
) -> dict[str, dict[str, str]]:
    """Names of the nine articles of chapter 7 in kk, ru and en (optional section; complete)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or set(map(str, raw)) != CRIMINAL_CODE_ARTICLES:
        raise fail("criminal_code_articles must name each of the articles 205-213")
    out: dict[str, dict[str, str]] = {}
    for article, names in raw.items():
        if not isinstance(names, dict) or any(
            not isinstance(names.get(lang), str) or not names[lang].strip() for lang in LANGUAGES
        ):
            raise fail(f"criminal_code_articles {article!r} needs names kk, ru and en")
        out[str(article)] = {lang: " ".join(names[lang].split()) for lang in LANGUAGES}
    return out


def _parse_entry(
    raw: Any,
    index: int,
    kz_cert: Mapping[str, Any],
    rsit: Mapping[str, Any],
    fail: Callable[[str], ClassificationError],
) -> Entry:
    if not isinstance(raw, dict):
        raise fail(f"mapping entry {index}: must be a mapping, got {type(raw).__name__}")
    name = f"mapping entry {index} ({raw.get('id', 'no id')})"
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        raise fail(f"{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}")
    for key in ("id", "why"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(f"{name}: needs a non-empty {key!r}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in MATCH_KEYS:
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise fail(f"{name}: {key!r} must be a non-empty list of strings")
        lists[key] = tuple(v.strip().lower() for v in value)
    if not lists:
        raise fail(f"{name}: names nothing to match (techniques, tactics, tags or logsource)")
    for technique in lists.get("techniques", ()):
        if not _TECHNIQUE.match(technique):
            raise fail(
                f"{name}: {technique!r} is not an ATT&CK technique id like t1110 or t1110.001"
            )
    for tactic in lists.get("tactics", ()):
        if _NOT_TACTIC.match(tactic) or not re.match(r"^[a-z][a-z-]+$", tactic):
            raise fail(f"{name}: {tactic!r} is not an ATT&CK tactic name like credential-access")
    for key in RESULT_KEYS:
        if key not in raw:
            raise fail(f"{name}: missing {key!r}")
    if raw["kz_cert"] not in kz_cert:
        raise fail(f"{name}: unknown KZ-CERT class {raw['kz_cert']!r}")
    if raw["rsit_class"] not in rsit:
        raise fail(f"{name}: unknown RSIT class {raw['rsit_class']!r}")
    if raw["rsit_type"] not in rsit[raw["rsit_class"]]["types"]:
        raise fail(
            f"{name}: RSIT type {raw['rsit_type']!r} is not a type of class {raw['rsit_class']!r}"
        )
    code = raw["criminal_code"]
    if not isinstance(code, list) or not all(isinstance(a, str) for a in code):
        raise fail(f"{name}: criminal_code must be a list of article numbers as strings")
    for article in code:
        if article not in CRIMINAL_CODE_ARTICLES:
            raise fail(
                f"{name}: criminal_code {article!r} is not an article of chapter 7 (205-213)"
            )
    return Entry(
        id=raw["id"].strip(),
        why=" ".join(raw["why"].split()),
        index=index,
        techniques=lists.get("techniques", ()),
        tactics=frozenset(t.replace("_", "-") for t in lists.get("tactics", ())),
        tags=lists.get("tags", ()),
        logsource=tuple((k, frozenset(lists[k])) for k in LOGSOURCE_KEYS if k in lists),
        kz_cert=raw["kz_cert"],
        rsit_class=raw["rsit_class"],
        rsit_type=raw["rsit_type"],
        criminal_code=tuple(code),
    )


# --------------------------------------------------------------------------- classifying


def attack_ids(tags: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(techniques, tactics) from Sigma tags: ``("t1110.001",), ("credential-access",)``.

    Lower case, in tag order, without duplicates. Group, software and data-source tags
    (``attack.g0007``, ``attack.s0002``, ``attack.ds0005``) are neither.
    """
    techniques: dict[str, None] = {}
    tactics: dict[str, None] = {}
    for tag in tags:
        tag = tag.strip().lower()
        if not tag.startswith("attack."):
            continue
        name = tag[len("attack.") :]
        if _TECHNIQUE.match(name):
            techniques[name] = None
        elif not _NOT_TACTIC.match(name) and name:
            tactics[name.replace("_", "-")] = None
    return tuple(techniques), tuple(tactics)


def classify(meta: RuleMeta, taxonomy: Taxonomy | None = None) -> Classification:
    """Classify one rule: its own declared classes first, then the first matching entry."""
    taxonomy = taxonomy or load_taxonomy()
    overrides = tuple(
        (key, _freeze(value)) for key, value in meta.attributes if key in OVERRIDE_KEYS
    )
    return _classify(
        taxonomy, tuple(meta.tags), tuple(meta.logsource), overrides, meta.path, meta.id
    )


def _freeze(value: Any) -> Any:
    """Hashable form of an attribute value, for the cache key."""
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    return value


@functools.lru_cache(maxsize=16384)
def _classify(
    taxonomy: Taxonomy,
    tags: tuple[str, ...],
    logsource: tuple[tuple[str, str], ...],
    overrides: tuple[tuple[str, Any], ...],
    path: str,
    rule_id: str,
) -> Classification:
    """Cached on everything the result depends on (the id and path only name warnings)."""
    techniques, tactics = attack_ids(tags)
    lowered_tags = tuple(t.strip().lower() for t in tags)
    entry = next(
        (
            e
            for e in taxonomy.entries
            if e.matches(techniques, frozenset(tactics), lowered_tags, dict(logsource))
        ),
        None,
    )
    declared, problems = _declared(taxonomy, dict(overrides))
    for problem in problems:
        log.warning("rule %s (%s): classification override refused: %s", rule_id, path, problem)

    kz_cert = declared.get("kz_cert", entry.kz_cert if entry else None)
    if "rsit_class" in declared:
        rsit_class, rsit_type = declared["rsit_class"], declared["rsit_type"]
    else:
        rsit_class = entry.rsit_class if entry else None
        rsit_type = entry.rsit_type if entry else None
    code = declared.get("criminal_code", entry.criminal_code if entry else ())

    if declared:
        covers_all = {"kz_cert", "rsit_class", "criminal_code"} <= set(declared)
        source = "rule" if covers_all or entry is None else f"rule+mapping:{entry.id}"
    else:
        source = f"mapping:{entry.id}" if entry else None
    return Classification(
        kz_cert=kz_cert,
        rsit_class=rsit_class,
        rsit_type=rsit_type,
        criminal_code=tuple(code),
        techniques=tuple(t.upper() for t in techniques),
        tactics=tactics,
        source=source,
        problems=tuple(problems),
    )


def _declared(taxonomy: Taxonomy, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The valid classes a rule declares, and a message per refused one.

    An invalid override is refused (the mapping's value is kept) rather than failing the rule:
    a typo in one rule must not stop detection, but it is logged and shown by the coverage
    report.
    """
    out: dict[str, Any] = {}
    problems: list[str] = []
    if "kz_cert" in attrs:
        value = attrs["kz_cert"]
        if isinstance(value, str) and value.strip() in taxonomy.kz_cert:
            out["kz_cert"] = value.strip()
        else:
            known = ", ".join(taxonomy.kz_cert)
            problems.append(f"kz_cert {value!r} is not a KZ-CERT class ({known})")
    if "rsit" in attrs:
        value = attrs["rsit"]
        text = value.strip().lower() if isinstance(value, str) else ""
        parts = taxonomy.rsit_aliases.get(text, text).split("/") if text else []
        if len(parts) == 2 and parts[1] in taxonomy.rsit_types(parts[0]):
            out["rsit_class"], out["rsit_type"] = parts
        else:
            problems.append(f"rsit {value!r} is not <class>/<type> of the RSIT taxonomy")
    if "criminal_code" in attrs:
        articles = _articles(attrs["criminal_code"])
        if articles is not None and all(a in CRIMINAL_CODE_ARTICLES for a in articles):
            out["criminal_code"] = articles
        else:
            value = attrs["criminal_code"]
            problems.append(f"criminal_code {value!r} is not a list of articles 205-213")
    return out, problems


def _articles(value: Any) -> tuple[str, ...] | None:
    """Article numbers from a list, a number or a comma-separated string; None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = [value]
    elif isinstance(value, str):
        value = [part for part in re.split(r"[,\s]+", value) if part]
    if not isinstance(value, list | tuple):
        return None
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str):
            return None
        text = str(item).strip()
        if not _ARTICLE.match(text):
            return None
        if text not in out:
            out.append(text)
    return tuple(out)
