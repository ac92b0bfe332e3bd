"""ATT&CK technique and tactic names, from the data file shipped with the package.

``attack.yml`` is generated from MITRE's Enterprise ATT&CK STIX data by
``scripts/attack_data.py`` (its header names the ATT&CK version and MITRE's licence notice), so
names are shown without a network. Pure: no web or database code.

Ids the data does not know (a newer ATT&CK release than the file's) still get an id and a link;
their name is None, and a tactic's name is read from its short name (``defense-impairment`` ->
"Defense Impairment").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from qorgan.detection.errors import DetectionError

DEFAULT_PATH = Path(__file__).with_name("attack.yml")
SITE = "https://attack.mitre.org"
_SMALL_WORDS = frozenset({"and", "or", "of", "the", "to", "in"})


@dataclass(frozen=True, slots=True)
class Technique:
    """A technique or sub-technique: ``id`` like ``T1110.001``; ``name`` None when unknown."""

    id: str
    name: str | None
    parent_name: str | None = None
    retired: bool = False

    @property
    def full_name(self) -> str | None:
        """ "Brute Force: Password Guessing" for a sub-technique, as ATT&CK writes it."""
        if self.name and self.parent_name:
            return f"{self.parent_name}: {self.name}"
        return self.name

    @property
    def url(self) -> str:
        main, _, sub = self.id.partition(".")
        return f"{SITE}/techniques/{main}/{sub}/" if sub else f"{SITE}/techniques/{main}/"


@dataclass(frozen=True, slots=True)
class Tactic:
    """A tactic by its short name (the Sigma tag ``attack.<shortname>``)."""

    shortname: str
    name: str
    id: str | None = None

    @property
    def url(self) -> str:
        return f"{SITE}/tactics/{self.id}/" if self.id else f"{SITE}/tactics/enterprise/"


@dataclass(frozen=True, slots=True)
class AttackData:
    """Names of one ATT&CK release's techniques and tactics."""

    version: str
    techniques: Mapping[str, str]
    tactics: Mapping[str, tuple[str, str]]  # shortname -> (id, name)
    retired: frozenset[str]

    def technique(self, technique_id: str) -> Technique:
        """The technique ``T1110.001`` (any case); unknown ids come back without a name."""
        key = technique_id.strip().upper()
        parent = key.partition(".")[0] if "." in key else None
        return Technique(
            id=key,
            name=self.techniques.get(key),
            parent_name=self.techniques.get(parent) if parent else None,
            retired=key in self.retired,
        )

    def tactic(self, shortname: str) -> Tactic:
        """The tactic ``credential-access`` (``_`` read as ``-``, any case)."""
        key = shortname.strip().lower().replace("_", "-")
        found = self.tactics.get(key)
        if found is not None:
            return Tactic(key, found[1], found[0])
        words = [
            w if w in _SMALL_WORDS and i else w.capitalize() for i, w in enumerate(key.split("-"))
        ]
        return Tactic(key, " ".join(words))

    def techniques_of(self, ids: Iterable[str]) -> list[Technique]:
        return [self.technique(i) for i in ids]

    def tactics_of(self, shortnames: Iterable[str]) -> list[Tactic]:
        return [self.tactic(s) for s in shortnames]


@functools.cache
def load_attack(path: Path | None = None) -> AttackData:
    """Load the data file once per path (the packaged one by default)."""
    path = path or DEFAULT_PATH
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DetectionError(f"cannot read the ATT&CK data: {exc}", source=str(path)) from exc
    try:
        techniques = {str(k).upper(): str(v) for k, v in data["techniques"].items()}
        tactics = {
            str(body["shortname"]): (str(tactic_id), str(body["name"]))
            for tactic_id, body in data["tactics"].items()
        }
        return AttackData(
            version=str(data["version"]),
            techniques=techniques,
            tactics=tactics,
            retired=frozenset(str(t).upper() for t in data.get("retired") or ()),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise DetectionError(f"malformed ATT&CK data: {exc!r}", source=str(path)) from exc
