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
  the template carry no evidence and are left out of the ratio;
- evidence before generalising: Drain turns a word into ``<*>`` as soon as one similar line
  differs there, which merges templates that differ in one constant word (``VM Started`` and
  ``VM Paused``, ``... HTTPS`` and ``... SOCKS5``). Here two different *words* (not masked
  values) at a position make a sibling template instead, and the position becomes ``<*>`` only
  once ``variants`` distinct words have been seen there (user names, host names do; an
  enumeration of a few states does not). The siblings that the generalised template then
  covers are absorbed into it (:meth:`TemplateMiner.canonical` maps their ids to its id).
  A difference in a masked value (``<*>``, ``(<*>)`` against ``()``) generalises at once, as in
  Drain; ``key=value`` words generalise to ``key=<*>``;
- variable-length values: Drain compares only lines of one word count, so ``1 bytes sent``
  and ``1 bytes (2 KB) sent`` would be two templates. A line that fits no template of its
  count is aligned (``difflib``) with the templates of up to ``max_gap`` more or fewer words
  and the same routing words; when the two have the same constant words in the same order
  and differ only by runs of values, the line's new template becomes a *shape* of that one
  and lines of either count get its id (:meth:`TemplateMiner.canonical`);
- a routing word that holds a digit, or no letter, goes to the ``<*>`` branch, as in Drain, and
  a node with ``max_children`` branches sends new words to ``<*>``, so a variable first word
  cannot grow the tree without bound;
- ids that never change: a template keeps its id when it generalises (only its text changes),
  ids are never reused, and they survive a restart through :meth:`TemplateMiner.state`. The one
  exception is a sibling absorbed as above: its id then stands for the absorbing template
  (:meth:`TemplateMiner.canonical`), and new lines get the absorbing template's id;
- bounded memory: at most ``max_templates`` templates in all and ``max_per_leaf`` per leaf (the
  least recently matched template is dropped first; its id is retired, and a line of its shape
  later gets a new id), at most ``variants`` words remembered per position, ``max_templates``
  aliases, and ``max_words`` words and :data:`MAX_CHARS` characters per line (a longer line's
  rest is one ``<*>``).

One configuration (the defaults) serves every log; the Loghub-2.0 figures in
``docs/anomaly.md`` were measured with it, no setting chosen per data set.

The state is plain JSON (:meth:`TemplateMiner.state`, :meth:`TemplateMiner.from_state`).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

from qorgan.detection.anomaly.masking import WILDCARD, tokens
from qorgan.detection.errors import DetectionError

#: Characters of a line that are masked and mined; the rest of a longer line is one ``<*>``, so
#: masking (linear, but about 2 s a megabyte for the worst text) stays bounded per line.
MAX_CHARS = 65_536

#: Masked lines remembered for :meth:`TemplateMiner.add`'s fast path (forgotten all at once).
_MAX_SEEN = 200_000
#: Changed templates remembered per leaf: a remembered line whose leaf changed more since is
#: searched again.
_MAX_TOUCHED = 256
#: Leaves of at most this many templates are compared with each (cheaper than counting).
_SCAN_LEAF = 8
#: Absorbed ids remembered for :meth:`TemplateMiner.changed`.
_MAX_CHANGES = 100_000

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
    #: Per position still a word: the distinct words similar lines brought there (with its own).
    seen: dict[int, list[str]] = field(default_factory=dict)
    #: A shape (another word count) of template ``of``, or 0: see :meth:`TemplateMiner._parent`.
    of: int = 0

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _is_variable(word: str) -> bool:
    """Whether a routing word is likely a value rather than a constant word."""
    return WILDCARD in word or any(c.isdigit() for c in word) or not any(c.isalpha() for c in word)


def _key(word: str) -> str | None:
    """The key of a ``key=value`` word (``rhost=`` of ``rhost=example.com``), else ``None``."""
    key, sep, value = word.partition("=")
    return key + sep if sep and key and value else None


def _generalise(template: str, word: str) -> str:
    """What a template's word becomes when a line brings another: the one holding ``<*>`` when
    the two differ only by values (``()`` and ``(<*>)``), ``key=<*>`` when both are values of one
    key, else ``<*>``."""
    if template.replace(WILDCARD, "") == word.replace(WILDCARD, ""):
        if WILDCARD in template and WILDCARD not in word:
            return template
        if WILDCARD in word and WILDCARD not in template:
            return word
    key = _key(template)
    return f"{key}{WILDCARD}" if key is not None and key == _key(word) else WILDCARD


@lru_cache(maxsize=4096)
def _pattern(word: str) -> re.Pattern[str]:
    return re.compile(".*?".join(re.escape(part) for part in word.split(WILDCARD)), re.DOTALL)


def _covers(template: str, word: str) -> bool:
    """Whether a template's word that holds ``<*>`` (``user=<*>``, ``(<*>)``) takes ``word``."""
    return WILDCARD in template and _pattern(template).fullmatch(word) is not None


def _compare(
    template: list[str], words: list[str], similarity: float = 0.0
) -> tuple[float, int, list[int], bool]:
    """Similarity of ``words`` to ``template``: the share of agreeing words among the positions
    not ``<*>`` in both, the number of those free positions, the positions where two different
    words meet (conflicts), and whether ``words`` fits as is (no conflict, and no word of the
    template meets a value of the line).

    Given the ``similarity`` a caller needs, it stops as soon as so many words disagree that
    the share must stay below it (most templates of a leaf), giving ``(0.0, 0, [], False)``."""
    same = free = missed = 0
    # disagreeing words beyond which the share is below ``similarity`` whatever the rest
    limit = (1.0 - similarity) * len(words) + 1e-9 if similarity > 0 else len(words) + 1
    conflicts: list[int] = []
    fits = True
    for i, (t, w) in enumerate(zip(template, words, strict=True)):
        if t == w:
            if t == WILDCARD:
                free += 1
            else:
                same += 1
            continue
        if WILDCARD in t and WILDCARD in w and WILDCARD in (t, w):  # values on both sides
            free += 1
            fits = fits and t == WILDCARD
            continue
        missed += 1
        if missed > limit:
            return 0.0, 0, [], False
        if t != WILDCARD and not _covers(t, w):
            fits = False
            if w != WILDCARD and t.replace(WILDCARD, "") != w.replace(WILDCARD, ""):
                conflicts.append(i)
    scored = len(words) - free
    return (same / scored if scored else 1.0), free, conflicts, fits


class TemplateMiner:
    """Online template mining: :meth:`add` learns, :meth:`match` only looks.

    ``depth`` is Drain's tree depth (the number of routing words is ``depth - 2``),
    ``similarity`` the share of agreeing words for a line to be compared with a template,
    ``variants`` how many distinct words a position must show before it becomes ``<*>``,
    ``max_words`` the words of a line that are mined (a longer line's rest is one ``<*>``),
    ``max_gap`` how many words a line may differ in count from a template it is a shape of.
    """

    def __init__(
        self,
        *,
        depth: int = 4,
        similarity: float = 0.7,
        variants: int = 4,
        max_children: int = 100,
        max_per_leaf: int = 200,
        max_templates: int = 50_000,
        max_words: int = 512,
        max_gap: int = 4,
    ) -> None:
        if depth < 3:
            raise ValueError("depth must be at least 3 (length and one routing word)")
        if not 0.0 < similarity <= 1.0:
            raise ValueError("similarity must be in (0, 1]")
        if min(variants, max_children, max_per_leaf, max_templates, max_words) < 2:
            raise ValueError("the limits must be at least 2")
        if max_gap < 0:
            raise ValueError("max_gap must not be negative")
        self.depth = depth
        self.similarity = similarity
        self.variants = variants
        self.max_children = max_children
        self.max_per_leaf = max_per_leaf
        self.max_templates = max_templates
        self.max_words = max_words
        self.max_gap = max_gap
        self._templates: dict[int, _Template] = {}
        self._aliases: dict[int, int] = {}
        self._leaves: dict[tuple[str, ...], list[int]] = {}
        #: Per leaf, the ids of its templates by (position, word), and by (position, "") those
        #: whose word there holds ``<*>``: what :meth:`_candidates` counts agreements with.
        self._postings: dict[tuple[str, ...], dict[tuple[int, str], set[int]]] = {}
        self._children: dict[tuple[str, ...], set[str]] = {}
        self._next_id = 1
        self._clock = 0
        #: Masked lines already mined, to the id of the template they joined (see :meth:`add`).
        self._seen: dict[tuple[str, ...], tuple[int, int]] = {}
        #: Per leaf, how many times its templates changed: a remembered line is only taken as
        #: it was while its leaf has not changed.
        self._versions: dict[tuple[str, ...], int] = {}
        #: Per leaf, the ids of its latest changed templates, the last at ``_versions``.
        self._touched: dict[tuple[str, ...], list[int]] = {}
        #: Ids absorbed into another template, in order; ``_changes_base`` were cut from the
        #: front (see :meth:`changed`).
        self._changes: list[int] = []
        self._changes_base = 0

    # -- public ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._templates)

    def add(self, text: str) -> TemplateMatch:
        """The template of ``text``, learning from it (a new template, or a generalisation)."""
        words = self._words(text)
        self._clock += 1
        key = tuple(words)
        seen = self._seen.get(key)
        if seen is not None:
            known = self._templates.get(seen[0])
            if known is not None and self._unchanged_for(known, words, seen[1]):
                # The same masked line again (most lines), and nothing in its leaf changed since
                # it joined ``known`` that it is similar to: the tree search would find
                # ``known`` again, and change nothing else, so it is skipped.
                self._seen[key] = (known.id, self._versions[known.leaf])
                known.size += 1
                known.last = self._clock
                tid = self.canonical(known.id)
                return TemplateMatch(tid, self._templates[tid].text, False)
        match, joined = self._add(words)
        if len(self._seen) >= _MAX_SEEN:
            self._seen.clear()
        template = self._templates.get(joined)
        if template is not None:
            self._seen[key] = (joined, self._versions.get(template.leaf, 0))
        return match

    @property
    def changes(self) -> int:
        """How many templates were absorbed into another so far: a counter for :meth:`changed`."""
        return self._changes_base + len(self._changes)

    def changed(self, since: int, until: int | None = None) -> list[int] | None:
        """The ids absorbed into another template between the counts ``since`` and ``until``
        (now when ``None``) of :attr:`changes`: what a detector counting by id must re-key
        (:meth:`canonical`). ``None`` when that history is no longer kept (re-key all)."""
        if since < self._changes_base:
            return None
        end = None if until is None else until - self._changes_base
        return self._changes[since - self._changes_base : end]

    def _unchanged_for(self, known: _Template, words: list[str], version: int) -> bool:
        """Whether the templates of ``known``'s leaf changed since ``version`` only in ways that
        cannot alter what ``words`` would find: ``known`` itself unchanged, and every other
        template changed (or new) too far from ``words`` to be compared with them."""
        now = self._versions.get(known.leaf, 0)
        if now == version:
            return True
        touched = self._touched[known.leaf]
        if now - version > len(touched):
            return False
        for tid in touched[version - now :]:
            if tid == known.id:
                return False
            template = self._templates.get(tid)
            if template is None:
                continue
            if _compare(template.words, words, self.similarity)[0] >= self.similarity:
                return False
        return True

    def _add(self, words: list[str]) -> tuple[TemplateMatch, int]:
        """The tree search of :meth:`add`: the match, and the id of the template joined."""
        leaf = self._route(words, grow=True)
        # (similarity, free positions, -id) of every similar template with no conflict left
        fitting: list[tuple[tuple[float, int, int], _Template, bool]] = []
        candidates = self._candidates(leaf, words)
        for tid in list(self._leaves.get(leaf, ())):
            template = self._templates.get(tid)
            if template is None:  # absorbed by a sibling earlier in this loop
                continue
            if candidates is not None and tid not in candidates:
                continue  # too many words disagree: _compare would give 0
            sim, free, conflicts, fits = _compare(template.words, words, self.similarity)
            if sim < self.similarity:
                continue
            if conflicts and self._learn_variants(template, words, conflicts):
                sim, free, conflicts, fits = _compare(template.words, words)
            if not conflicts:
                fitting.append(((sim, free, -template.id), template, fits))
        fitting = [f for f in fitting if f[1].id in self._templates]
        best, fits = (None, False)
        if fitting:
            _, best, fits = max(fitting, key=lambda f: f[0])
        if best is None:
            parent = self._parent(leaf, words)
            template = self._create(leaf, words)
            if parent is None:
                return TemplateMatch(template.id, template.text, True), template.id
            template.of = parent.id
            return TemplateMatch(parent.id, parent.text, False), template.id
        if not fits:  # values of the line meet words of the template: those become <*>
            self._touch(best)
            for i, (t, w) in enumerate(zip(best.words, words, strict=True)):
                if t != w and t != WILDCARD and not _covers(t, w):
                    self._set_word(best, i, _generalise(t, w))
                    best.seen.pop(i, None)
        best.size += 1
        best.last = self._clock
        tid = self.canonical(best.id)
        return TemplateMatch(tid, self._templates[tid].text, False), best.id

    def match(self, text: str) -> TemplateMatch:
        """The template ``text`` fits, without learning; ``template_id`` 0 and ``is_new`` when
        none does (the masked line is then given as ``template``)."""
        words = self._words(text)
        leaf = self._route(words, grow=False)
        best: tuple[tuple[float, int, int], _Template] | None = None
        candidates = self._candidates(leaf, words)
        for tid in self._leaves.get(leaf, ()):
            if candidates is not None and tid not in candidates:
                continue
            template = self._templates[tid]
            sim, free, _, fits = _compare(template.words, words, self.similarity)
            if sim >= self.similarity and fits and (best is None or (sim, free, -tid) > best[0]):
                best = ((sim, free, -tid), template)
        if best is None:
            parent = self._parent(leaf, words)
            if parent is None:
                return TemplateMatch(0, " ".join(words), True)
            return TemplateMatch(parent.id, parent.text, False)
        tid = self.canonical(best[1].id)
        return TemplateMatch(tid, self._templates[tid].text, False)

    def canonical(self, template_id: int) -> int:
        """The id that now stands for ``template_id``: itself, the template that absorbed it
        when a position became ``<*>``, or the template it is a shape of (see the module
        doc); 0 when it was dropped."""
        for _ in range(64):
            if template_id in self._aliases:
                template_id = self._aliases[template_id]
                continue
            template = self._templates.get(template_id)
            if template is None:
                return 0
            if template.of and (template.of in self._templates or template.of in self._aliases):
                template_id = template.of  # a shape: its template stands for it
                continue
            return template_id
        return 0

    def templates(self) -> dict[int, str]:
        """Every template kept, by id (shapes of another template are that template's)."""
        return {
            tid: t.text for tid, t in sorted(self._templates.items()) if self.canonical(tid) == tid
        }

    def state(self) -> dict[str, Any]:
        """Everything learned and the settings, as plain JSON data."""
        return {
            "version": STATE_VERSION,
            "settings": {k: getattr(self, k) for k in _SETTINGS},
            "next_id": self._next_id,
            "clock": self._clock,
            "templates": [
                {
                    "id": t.id,
                    "words": t.words,
                    "leaf": list(t.leaf),
                    "size": t.size,
                    "last": t.last,
                    "seen": {str(i): v for i, v in sorted(t.seen.items())},
                    "of": t.of,
                }
                for t in sorted(self._templates.values(), key=lambda t: t.id)
            ],
            "aliases": {str(k): v for k, v in sorted(self._aliases.items())},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TemplateMiner:
        """A miner that continues from ``state`` (from :meth:`state`), with its settings."""
        try:
            settings = state["settings"]
            miner = cls(**{k: settings[k] for k in _SETTINGS})
        except (KeyError, TypeError, ValueError) as exc:
            raise TemplateStateError(f"not a template miner state: {exc!r}") from exc
        miner.load(state)
        return miner

    def load(self, state: Mapping[str, Any]) -> None:
        """Replace what was learned by ``state`` (the settings stay this miner's own)."""
        try:
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"unknown state version {state.get('version')!r}")
            templates: dict[int, _Template] = {}
            for row in state["templates"]:
                words = [str(w) for w in row["words"]]
                leaf = tuple(str(w) for w in row["leaf"])
                if not leaf or leaf[0] != str(len(words)):
                    raise ValueError(f"template {row.get('id')!r} is malformed")
                seen = {int(i): [str(w) for w in v] for i, v in row.get("seen", {}).items()}
                tid = int(row["id"])
                templates[tid] = _Template(
                    tid,
                    words,
                    leaf,
                    int(row["size"]),
                    int(row["last"]),
                    seen,
                    int(row.get("of", 0)),
                )
            aliases = {int(k): int(v) for k, v in state.get("aliases", {}).items()}
            next_id = int(state["next_id"])
            clock = int(state["clock"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TemplateStateError(f"not a template miner state: {exc!r}") from exc
        if templates and next_id <= max(templates):
            raise TemplateStateError("not a template miner state: next_id is not above the ids")
        self._templates = templates
        self._aliases = aliases
        self._next_id = next_id
        self._clock = clock
        self._leaves = {}
        self._postings = {}
        self._children = {}
        self._seen = {}
        self._versions = {}
        self._touched = {}
        for template in sorted(templates.values(), key=lambda t: t.id):
            self._index(template)

    # -- the tree -------------------------------------------------------------------------

    def _words(self, text: str) -> list[str]:
        cut = len(text) > MAX_CHARS
        words = tokens(text[:MAX_CHARS] if cut else text)
        if cut:
            words.append(WILDCARD)
        if len(words) > self.max_words:
            words = [*words[: self.max_words - 1], WILDCARD]
        return words

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

    def _learn_variants(self, template: _Template, words: list[str], conflicts: list[int]) -> bool:
        """Note the words ``words`` brings where ``template`` has others; a position that has
        now shown ``variants`` distinct words becomes ``<*>``, and the siblings that then fit
        the template are absorbed into it. Whether the template changed."""
        changed = False
        for i in conflicts:
            seen = template.seen.get(i)
            if seen is None:
                seen = template.seen[i] = [template.words[i]]
                self._touch(template)
            if words[i] not in seen:
                seen.append(words[i])
                self._touch(template)
            if len(seen) >= self.variants:
                self._set_word(template, i, _generalise(template.words[i], words[i]))
                del template.seen[i]
                changed = True
        if changed:
            self._touch(template)
            self._absorb_siblings(template)
        return changed

    def _absorb_siblings(self, template: _Template) -> None:
        for tid in list(self._leaves.get(template.leaf, ())):
            sibling = self._templates[tid]
            if sibling is template:
                continue
            if all(
                t in (WILDCARD, s) or _covers(t, s)
                for t, s in zip(template.words, sibling.words, strict=True)
            ):
                template.size += sibling.size
                template.last = max(template.last, sibling.last)
                self._drop(tid)
                self._aliases[tid] = template.id
                self._changes.append(tid)
        if len(self._changes) > _MAX_CHANGES:
            cut = len(self._changes) // 2
            del self._changes[:cut]
            self._changes_base += cut
        while len(self._aliases) > self.max_templates:
            del self._aliases[min(self._aliases)]

    def _parent(self, leaf: tuple[str, ...], words: list[str]) -> _Template | None:
        """A template of another word count that ``words`` differs from only in values: the
        same constant words in the same order, and only runs of values (words holding
        ``<*>``) inserted, deleted or replaced (``1 bytes sent`` and ``1 bytes (2 KB) sent``).
        The line's template becomes a shape of it, so lines of either count share its id."""
        constant = [w for w in words if WILDCARD not in w]
        if len(constant) < 2:
            return None
        best: tuple[int, _Template] | None = None
        n = len(words)
        for other in range(max(1, n - self.max_gap), n + self.max_gap + 1):
            if other == n:
                continue
            for tid in self._leaves.get((str(other), *leaf[1:]), ()):
                template = self._templates[tid]
                if [w for w in template.words if WILDCARD not in w] != constant:
                    continue
                ops = SequenceMatcher(None, template.words, words, autojunk=False).get_opcodes()
                if all(
                    op == "equal" or all(WILDCARD in w for w in (*template.words[a:b], *words[c:d]))
                    for op, a, b, c, d in ops
                ):
                    root = self.canonical(tid)
                    if best is None or template.size > best[0]:
                        best = (template.size, self._templates[root])
        return best[1] if best else None

    def _create(self, leaf: tuple[str, ...], words: list[str]) -> _Template:
        template = _Template(self._next_id, list(words), leaf, 1, self._clock)
        self._next_id += 1
        in_leaf = self._leaves.get(leaf, [])
        if len(in_leaf) >= self.max_per_leaf:  # the least recently matched (the first of ties)
            last = [self._templates[tid].last for tid in in_leaf]
            self._drop(in_leaf[last.index(min(last))])
        if len(self._templates) >= self.max_templates:
            self._drop(min(self._templates.values(), key=lambda t: t.last).id)
        self._templates[template.id] = template
        self._index(template)
        return template

    def _touch(self, template: _Template) -> None:
        """Note that ``template`` changed (or came, or went): lines remembered in its leaf
        must be checked against it (:meth:`_unchanged_for`)."""
        leaf = template.leaf
        self._versions[leaf] = self._versions.get(leaf, 0) + 1
        touched = self._touched.setdefault(leaf, [])
        touched.append(template.id)
        if len(touched) > 2 * _MAX_TOUCHED:
            del touched[:-_MAX_TOUCHED]

    def _candidates(self, leaf: tuple[str, ...], words: list[str]) -> set[int] | None:
        """The templates of ``leaf`` that agree with ``words`` in enough positions to reach
        :attr:`similarity` in :func:`_compare`; every other one would stop there with 0.
        ``None`` for a leaf small enough to compare with every template.

        A position agrees (is not a miss in :func:`_compare`) where the two words are equal,
        where the line's word is ``<*>`` and the template's holds ``<*>``, or where the
        template's word is ``<*>`` and the line's holds ``<*>``. Counting those through the
        leaf's postings costs one set per position instead of one comparison per template:
        the access log of a web attack puts thousands of one-off URLs in one leaf."""
        ids = self._leaves.get(leaf)
        if ids is None or len(ids) <= _SCAN_LEAF:
            return None
        postings = self._postings[leaf]
        hits: list[set[int]] = []
        for i, w in enumerate(words):
            if WILDCARD not in w:
                found = postings.get((i, w))
            elif w == WILDCARD:
                found = postings.get((i, ""))
            else:
                found = postings.get((i, w))
                star = postings.get((i, WILDCARD))
                if star:
                    hits.append(star)
            if found:
                hits.append(found)
        # at most (1 - similarity) * len(words) misses, as _compare's limit
        need = len(words) - ((1.0 - self.similarity) * len(words) + 1e-9)
        return {tid for tid, n in Counter(chain.from_iterable(hits)).items() if n >= need}

    def _post(self, template: _Template, i: int, *, add: bool) -> None:
        """Enter (or remove) ``template``'s word at position ``i`` in its leaf's postings."""
        postings = self._postings.setdefault(template.leaf, {})
        word = template.words[i]
        for key in ((i, word), (i, "")) if WILDCARD in word else ((i, word),):
            if add:
                postings.setdefault(key, set()).add(template.id)
            else:
                ids = postings.get(key)
                if ids is not None:
                    ids.discard(template.id)
                    if not ids:
                        del postings[key]

    def _set_word(self, template: _Template, i: int, word: str) -> None:
        """Change ``template``'s word at position ``i``, keeping the postings in step."""
        self._post(template, i, add=False)
        template.words[i] = word
        self._post(template, i, add=True)

    def _index(self, template: _Template) -> None:
        leaf = template.leaf
        self._touch(template)
        for i in range(1, len(leaf)):
            self._children.setdefault(leaf[:i], set()).add(leaf[i])
        self._leaves.setdefault(leaf, []).append(template.id)
        for i in range(len(template.words)):
            self._post(template, i, add=True)

    def _drop(self, tid: int) -> None:
        """Forget template ``tid`` (its id is retired: ids are never reused)."""
        template = self._templates.pop(tid)
        self._touch(template)
        for i in range(len(template.words)):
            self._post(template, i, add=False)
        self._leaves[template.leaf].remove(tid)
        if not self._leaves[template.leaf]:
            del self._leaves[template.leaf]
            self._postings.pop(template.leaf, None)


def load_miner(path: Path, **settings: Any) -> TemplateMiner:
    """The miner saved at ``path`` by :func:`save_miner`; a new one with ``settings`` when
    there is no file yet (the first run of a source)."""
    if not path.exists():
        return TemplateMiner(**settings)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TemplateStateError(
            f"cannot read the template state: {exc}", source=str(path)
        ) from exc
    if not isinstance(state, dict):
        raise TemplateStateError("the template state is not a JSON object", source=str(path))
    try:
        return TemplateMiner.from_state(state)
    except TemplateStateError as exc:
        raise TemplateStateError(exc.message, source=str(path)) from exc


def save_miner(miner: TemplateMiner, path: Path) -> None:
    """Write ``miner``'s state to ``path`` as JSON, atomically (a crash leaves the old file)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:
        raise TemplateStateError(
            f"cannot write the template state: {exc}", source=str(path)
        ) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(miner.state(), f, separators=(",", ":"))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise TemplateStateError(
            f"cannot write the template state: {exc}", source=str(path)
        ) from exc


_SETTINGS = (
    "depth",
    "similarity",
    "variants",
    "max_children",
    "max_per_leaf",
    "max_templates",
    "max_words",
    "max_gap",
)
