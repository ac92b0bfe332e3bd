"""Log templates mined online with Drain's fixed-depth tree, in code of our own.

Drain (He et al., ICWS 2017) routes a masked line through a tree of fixed depth (first by its
number of words, then by its first words) to a leaf holding a few templates, and joins the line
to the most similar one when enough words agree; the words that differ become ``<*>``.

Why our own code and not the ``drain3`` package: ``drain3`` (last release 0.9.11, 2022)
persists its state with ``jsonpickle``, which runs code when a crafted state file is loaded
(our state files are read back on every restart, so they must be plain data); it is not in our
environment; and its published grouping accuracy on Loghub-2.0's corrected templates (about
0.85) is below what we need. The algorithm is short; what we add to it:

- masking of general variable parts first (:mod:`.masking`), so numbers, addresses, ids, paths
  and times never reach the tree;
- similarity over the words that can disagree: positions that are ``<*>`` in both the line and
  the template carry no evidence and are left out of the ratio, so a line made mostly of
  variables is not judged on them;
- a routing word that holds a digit, or that is not a plain word (punctuation-only), goes to
  the ``<*>`` branch, as in Drain, and a node with ``max_children`` branches sends new words to
  ``<*>``, so a variable first word cannot grow the tree without bound;
- ids that never change: a template keeps its id when it generalises (only its text changes),
  ids are never reused, and they survive a restart through :meth:`TemplateMiner.state`;
- bounded memory: at most ``max_templates`` templates in all and ``max_per_leaf`` per leaf; the
  least recently matched template is dropped first (its id is retired, a line of its shape
  later gets a new id).

The state is plain JSON (:meth:`TemplateMiner.state`, :meth:`TemplateMiner.from_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qorgan.detection.anomaly.masking import WILDCARD, tokens
from qorgan.detection.errors import DetectionError

#: Version of :meth:`TemplateMiner.state`'s layout.
STATE_VERSION = 1


class TemplateStateError(DetectionError):
    """A template state that cannot be loaded (not from :meth:`TemplateMiner.state`)."""


@dataclass(frozen=True, slots=True)
class TemplateMatch:
    """The template of one line."""

    #: Stable id: the same for every line of the template, across restarts and generalisations.
    template_id: int
    #: The template's words joined by one space, ``<*>`` for each variable part.
    template: str
    #: Whether this line created the template (``add``) / whether no template fits (``match``).
    is_new: bool


@dataclass(slots=True)
class _Template:
    id: int
    words: list[str]
    leaf: tuple[str, ...]
    size: int
    last: int

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _is_variable(word: str) -> bool:
    """Whether a routing word is likely a value rather than a constant word."""
    return WILDCARD in word or any(c.isdigit() for c in word) or not any(c.isalpha() for c in word)


class TemplateMiner:
    """Online template mining: :meth:`add` learns, :meth:`match` only looks.

    ``depth`` is Drain's tree depth (the number of routing words is ``depth - 2``),
    ``similarity`` the share of agreeing words needed to join a template.
    """

    def __init__(
        self,
        *,
        depth: int = 4,
        similarity: float = 0.7,
        max_children: int = 100,
        max_per_leaf: int = 200,
        max_templates: int = 50_000,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be at least 3 (length and one routing word)")
        if not 0.0 < similarity <= 1.0:
            raise ValueError("similarity must be in (0, 1]")
        if max_children < 1 or max_per_leaf < 1 or max_templates < 1:
            raise ValueError("the limits must be positive")
        self.depth = depth
        self.similarity = similarity
        self.max_children = max_children
        self.max_per_leaf = max_per_leaf
        self.max_templates = max_templates
        self._templates: dict[int, _Template] = {}
        self._leaves: dict[tuple[str, ...], list[int]] = {}
        self._children: dict[tuple[str, ...], set[str]] = {}
        self._next_id = 1
        self._clock = 0

    # -- public ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._templates)

    def add(self, text: str) -> TemplateMatch:
        """The template of ``text``, learning from it (a new template, or a generalisation)."""
        words = tokens(text)
        self._clock += 1
        leaf = self._route(words, grow=True)
        best = self._best(leaf, words)
        if best is None:
            template = self._create(leaf, words)
            return TemplateMatch(template.id, template.text, True)
        best.words = [t if t == w else WILDCARD for t, w in zip(best.words, words, strict=True)]
        best.size += 1
        best.last = self._clock
        return TemplateMatch(best.id, best.text, False)

    def match(self, text: str) -> TemplateMatch:
        """The template ``text`` would join, without learning; ``template_id`` 0 and
        ``is_new`` when none fits (the masked line is then given as ``template``)."""
        words = tokens(text)
        leaf = self._route(words, grow=False)
        best = self._best(leaf, words)
        if best is None:
            return TemplateMatch(0, " ".join(words), True)
        merged = [t if t == w else WILDCARD for t, w in zip(best.words, words, strict=True)]
        return TemplateMatch(best.id, " ".join(merged), False)

    def templates(self) -> dict[int, str]:
        """Every template kept, by id."""
        return {tid: t.text for tid, t in sorted(self._templates.items())}

    def state(self) -> dict[str, Any]:
        """Everything learned and the settings, as plain JSON data."""
        return {
            "version": STATE_VERSION,
            "settings": {
                "depth": self.depth,
                "similarity": self.similarity,
                "max_children": self.max_children,
                "max_per_leaf": self.max_per_leaf,
                "max_templates": self.max_templates,
            },
            "next_id": self._next_id,
            "clock": self._clock,
            "templates": [
                {"id": t.id, "words": t.words, "leaf": list(t.leaf), "size": t.size, "last": t.last}
                for t in sorted(self._templates.values(), key=lambda t: t.id)
            ],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TemplateMiner:
        """A miner that continues from ``state`` (from :meth:`state`)."""
        try:
            settings = state["settings"]
            miner = cls(**{k: settings[k] for k in _SETTINGS})
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateStateError(f"not a template miner state: {exc}") from exc
        miner.load(state)
        return miner

    def load(self, state: Mapping[str, Any]) -> None:
        """Replace what was learned by ``state`` (settings stay this miner's own)."""
        try:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unknown state version {state.get('version')!r}")
            templates = {}
            for row in state["templates"]:
                words = [str(w) for w in row["words"]]
                leaf = tuple(str(w) for w in row["leaf"])
                if not words or len(leaf) < 1 or leaf[0] != str(len(words)):
                    raise ValueError(f"template {row.get('id')!r} is malformed")
                templates[int(row["id"])] = _Template(
                    int(row["id"]), words, leaf, int(row["size"]), int(row["last"])
                )
            next_id = int(state["next_id"])
            clock = int(state["clock"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TemplateStateError(f"not a template miner state: {exc}") from exc
        if templates and next_id <= max(templates):
            raise TemplateStateError("not a template miner state: next_id is not above the ids")
        self._templates = templates
        self._next_id = next_id
        self._clock = clock
        self._leaves = {}
        self._children = {}
        for template in sorted(templates.values(), key=lambda t: t.id):
            self._index(template)

    # -- the tree -------------------------------------------------------------------------

    def _route(self, words: list[str], *, grow: bool) -> tuple[str, ...]:
        """The leaf key of ``words``: their count, then up to ``depth - 2`` routing words."""
        key: tuple[str, ...] = (str(len(words)),)
        for word in words[: self.depth - 2]:
            step = WILDCARD if _is_variable(word) else word
            children = self._children.get(key, set())
            if step not in children and (not grow or len(children) >= self.max_children):
                step = WILDCARD
            key = (*key, step)
        return key

    def _best(self, leaf: tuple[str, ...], words: list[str]) -> _Template | None:
        best: _Template | None = None
        best_score = (-1.0, -1)
        for tid in self._leaves.get(leaf, ()):
            template = self._templates[tid]
            same = free = 0
            for t, w in zip(template.words, words, strict=True):
                if t == WILDCARD and w == WILDCARD:
                    free += 1
                elif t == w:
                    same += 1
            scored = len(words) - free
            sim = same / scored if scored else 1.0
            score = (sim, free)
            if sim >= self.similarity and score > best_score:
                best, best_score = template, score
        return best

    def _create(self, leaf: tuple[str, ...], words: list[str]) -> _Template:
        template = _Template(self._next_id, list(words), leaf, 1, self._clock)
        self._next_id += 1
        in_leaf = self._leaves.get(leaf, [])
        if len(in_leaf) >= self.max_per_leaf:
            self._drop(min(in_leaf, key=lambda tid: self._templates[tid].last))
        if len(self._templates) >= self.max_templates:
            self._drop(min(self._templates.values(), key=lambda t: t.last).id)
        self._templates[template.id] = template
        self._index(template)
        return template

    def _index(self, template: _Template) -> None:
        leaf = template.leaf
        for i in range(1, len(leaf)):
            self._children.setdefault(leaf[:i], set()).add(leaf[i])
        self._leaves.setdefault(leaf, []).append(template.id)

    def _drop(self, tid: int) -> None:
        """Forget template ``tid`` (its id is retired: ids are never reused)."""
        template = self._templates.pop(tid)
        self._leaves[template.leaf].remove(tid)
        if not self._leaves[template.leaf]:
            del self._leaves[template.leaf]


_SETTINGS = ("depth", "similarity", "max_children", "max_per_leaf", "max_templates")
