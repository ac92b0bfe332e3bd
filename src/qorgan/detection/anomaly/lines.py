"""Line-level anomaly: how surprising one line is, from the rarity of its words and of its
header fields (its level, severity...).

A general model of a log's lines, learned without labels:

- *content novelty* ``W``: the mean surprisal of the line's words, ``-ln((df + a) / (N + 2a))``
  with ``df`` the number of learned lines containing the word and ``N`` the lines learned.
  Words are the alphabetic tokens of the text after every token holding a digit is dropped, so
  numbers, addresses and ids do not make a line look new;
- *header rarity* ``L``: the sum of the surprisals of the line's categorical header fields
  (``fields``, those present), ``-ln((count + a) / (N + a (V + 1)))`` over ``V`` values seen.

The score is ``(1 + L) * W``: unusual words weigh more on a line whose level is itself unusual
(a never-seen sentence at the level most lines have is a new kind of routine message more often
than a failure). It splits exactly into contributions: each word its ``(1 + L) s_w / n``, each
field its ``L_f W``.

The threshold is a quantile (``quantile``) of the leave-one-out scores of the learned lines
(each scored as if it had not been learned): "flag what is rarer than all but the rarest 2% of
what was learned". :meth:`LineRarityModel.calibrate` sets it after learning.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from qorgan.detection.anomaly.eventkeys import identifiers_of, source_of, text_of, without_text
from qorgan.detection.anomaly.findings import MAX_EXAMPLES, Finding, contributions
from qorgan.detection.errors import DetectionError
from qorgan.telemetry.batch import EventBatch

STATE_VERSION = 1
#: Header fields whose rarity counts: the level or severity of a line, under the names our
#: formats and Loghub's layouts give them.
DEFAULT_FIELDS = ("Level", "level", "severity")
#: Words shown one by one in an explanation; the rest are summed into one contribution.
TOP_WORDS = 4


class LineModelError(DetectionError):
    """A line model used before it has a threshold, or a state it cannot read."""


_WORD = re.compile(r"[A-Za-z_]{2,}")
_HAS_DIGIT = re.compile(r"\d")


@lru_cache(maxsize=1024)
def words_of(text: str) -> frozenset[str]:
    """The distinct words of a line: tokens with a digit dropped, alphabetic runs kept.
    (Remembered for the last lines: one line is scored and learned in a row.)"""
    kept = " ".join(t for t in text.split() if not _HAS_DIGIT.search(t))
    return frozenset(_WORD.findall(kept))


@dataclass(frozen=True, slots=True)
class LineScore:
    """One line's score and its parts (natural-log surprisals)."""

    score: float
    novelty: float
    fields: tuple[tuple[str, str, float], ...]
    words: tuple[tuple[str, float, int], ...]

    @property
    def header(self) -> float:
        return sum(s for _, _, s in self.fields)


class LineRarityModel:
    """Learn lines, then score new ones (see the module doc)."""

    model = "qorgan-line-rarity"
    version = "1.0"

    def __init__(
        self,
        *,
        fields: Iterable[str] = DEFAULT_FIELDS,
        smoothing: float = 0.5,
        quantile: float = 0.98,
    ) -> None:
        if smoothing <= 0:
            raise ValueError("smoothing must be positive")
        if not 0.0 < quantile <= 1.0:
            raise ValueError("quantile must be in (0, 1]")
        self.fields = tuple(fields)
        self.smoothing = smoothing
        self.quantile = quantile
        self.threshold: float | None = None
        self.lines = 0
        self._words: Counter[str] = Counter()
        self._values: dict[str, Counter[str]] = {f: Counter() for f in self.fields}

    def _header(self, event: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(f, str(event[f])) for f in self.fields if event.get(f) is not None]

    def learn(self, event: Mapping[str, Any], text: str) -> None:
        """Count one line: its words and its header fields."""
        self._add(event, text, 1)

    def _add(self, event: Mapping[str, Any], text: str, sign: int) -> None:
        self.lines += sign
        for word in words_of(text):
            self._words[word] += sign
        for name, value in self._header(event):
            self._values[name][value] += sign

    def score(self, event: Mapping[str, Any], text: str) -> LineScore:
        """The line's score against what was learned (nothing is learned from it)."""
        a, n = self.smoothing, self.lines
        parts = []
        for name, value in self._header(event):
            counts = self._values[name]
            p = (counts[value] + a) / (n + a * (len(counts) + 1))
            parts.append((name, value, -math.log(p)))
        words = []
        for word in sorted(words_of(text)):
            df = self._words[word]
            words.append((word, -math.log((df + a) / (n + 2 * a)), df))
        novelty = sum(s for _, s, _ in words) / len(words) if words else 0.0
        header = sum(s for _, _, s in parts)
        return LineScore((1.0 + header) * novelty, novelty, tuple(parts), tuple(words))

    def calibrate(self, lines: Iterable[tuple[Mapping[str, Any], str]]) -> float:
        """Set the threshold from ``lines``, which must all have been learned: the
        :attr:`quantile` of their leave-one-out scores."""
        scores = []
        for event, text in lines:
            self._add(event, text, -1)
            try:
                scores.append(self.score(event, text).score)
            finally:
                self._add(event, text, 1)
        if not scores:
            raise LineModelError("calibrating needs at least one learned line")
        scores.sort()
        self.threshold = scores[min(len(scores) - 1, int(self.quantile * len(scores)))]
        return self.threshold

    def is_anomalous(self, result: LineScore) -> bool:
        if self.threshold is None:
            raise LineModelError("the line model has no threshold: calibrate it first")
        return result.score >= self.threshold and result.score > 0

    def explain(
        self,
        event: Mapping[str, Any],
        text: str,
        *,
        source: str,
        time: str | None = None,
        identifiers: tuple[str, ...] = (),
        result: LineScore | None = None,
    ) -> Finding | None:
        """The finding for one line, or ``None`` when it is not anomalous; ``result`` is the
        line's :meth:`score` when the caller has it already."""
        if result is None:
            result = self.score(event, text)
        if not self.is_anomalous(result):
            return None
        assert self.threshold is not None
        multiplier = 1.0 + result.header
        n_words = len(result.words)
        parts: list[tuple[str, float, Any, Any]] = []
        for name, value, surprisal in result.fields:
            usual = self._values[name].most_common(1)
            parts.append(
                (f"field.{name}", surprisal * result.novelty, usual[0][0] if usual else None, value)
            )
        ranked = sorted(result.words, key=lambda w: (-w[1], -len(w[0])))  # ties: longer first
        mean_df = sum(self._words.values()) / max(1, len(self._words))
        for word, surprisal, df in ranked[:TOP_WORDS]:
            parts.append((f"word.{word}", multiplier * surprisal / n_words, round(mean_df, 1), df))
        rest = sum(s for _, s, _ in ranked[TOP_WORDS:])
        if rest > 0:
            parts.append(("word.others", multiplier * rest / n_words, None, n_words - TOP_WORDS))
        unseen = sum(1 for _, _, df in result.words if df == 0)
        shape = hashlib.sha256(" ".join(sorted(w for w, _, _ in result.words)).encode())
        header = ", ".join(f"{n}={v}" for n, v, _ in result.fields)
        return Finding(
            detector="line.rare",
            model=self.model,
            version=self.version,
            time=time,
            source=source,
            entity={"source": source},
            score=round(result.score, 4),
            threshold=round(self.threshold, 4),
            confidence=round(1.0 - math.exp(-(result.score - self.threshold) - 1.0), 4),
            contributions=contributions(parts),
            summary=(
                f"An unusual line on {source}: {unseen} of its {n_words} words never seen in"
                f" {self.lines} learned lines" + (f"; {header}" if header else "")
            ),
            examples=(text,),
            pattern=f"line|source={source}|words={shape.hexdigest()[:16]}",
            identifiers=identifiers,
        )

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "model": self.model,
            "lines": self.lines,
            "threshold": self.threshold,
            "words": dict(self._words),
            "values": {f: dict(c) for f, c in self._values.items()},
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("model") != self.model:
            raise LineModelError(f"not a {self.model} state of version {STATE_VERSION}")
        try:
            lines = int(state["lines"])
            threshold = None if state["threshold"] is None else float(state["threshold"])
            words = Counter({str(k): int(v) for k, v in dict(state["words"]).items()})
            values = {
                str(f): Counter({str(k): int(v) for k, v in dict(c).items()})
                for f, c in dict(state["values"]).items()
            }
        except (KeyError, TypeError, ValueError) as exc:
            raise LineModelError(f"{self.model} state is damaged: {exc!r}") from exc
        self.lines, self.threshold, self._words = lines, threshold, words
        self._values = {f: values.get(f, Counter()) for f in self.fields}


class LineRarityDetector:
    """The line model as a streaming :class:`~qorgan.detection.anomaly.detector.Detector`: one
    model per source; each line is scored, then learned.

    A source is judged once it has learned ``warmup`` lines. Its threshold is the model's
    ``quantile`` of the scores its last ``window`` lines had when they arrived (each scored
    before it was learned, as the leave-one-out calibration does for a trained model), renewed
    every ``recalibrate`` lines. The lines of one pattern in a batch make one finding, with
    them as examples. A rejected finding's words are learned and its pattern (the
    set of words on that source) never fires again.
    """

    model = LineRarityModel.model
    version = LineRarityModel.version

    def __init__(
        self,
        *,
        fields: Iterable[str] = DEFAULT_FIELDS,
        warmup: int = 500,
        window: int = 2000,
        recalibrate: int = 200,
        quantile: float = 0.98,
    ) -> None:
        if warmup < 1 or window < 1 or recalibrate < 1:
            raise ValueError("warmup, window and recalibrate must be positive")
        self.fields = tuple(fields)
        self.warmup = warmup
        self.window = window
        self.recalibrate = recalibrate
        self.quantile = quantile
        self._models: dict[str, LineRarityModel] = {}
        self._recent: dict[str, list[float]] = {}
        self._suppressed: set[str] = set()

    def _model(self, source: str) -> LineRarityModel:
        model = self._models.get(source)
        if model is None:
            model = self._models[source] = LineRarityModel(
                fields=self.fields, quantile=self.quantile
            )
            self._recent[source] = []
        return model

    def observe(self, batch: EventBatch) -> list[Finding]:
        findings: list[Finding] = []
        seen: dict[str, int] = {}
        skip = without_text(batch)
        for i, event in enumerate(batch.events):
            if i in skip:
                continue
            text = text_of(batch, i)
            source = source_of(batch, i)
            model = self._model(source)
            recent = self._recent[source]
            scored = model.score(event, text)
            if model.threshold is not None and model.lines >= self.warmup:
                finding = model.explain(
                    event,
                    text,
                    source=source,
                    time=batch.times[i] if i < len(batch.times) else None,
                    identifiers=identifiers_of(event),
                    result=scored,
                )
                if finding is not None and finding.pattern not in self._suppressed:
                    at = seen.get(finding.pattern)
                    if at is None:
                        seen[finding.pattern] = len(findings)
                        findings.append(finding)
                    elif len(findings[at].examples) < MAX_EXAMPLES:  # one finding per batch
                        first = findings[at]
                        findings[at] = replace(first, examples=(*first.examples, text))
            recent.append(scored.score)
            del recent[: -self.window]
            model.learn(event, text)
            if model.lines >= self.warmup and (model.lines - self.warmup) % self.recalibrate == 0:
                ranked = sorted(recent)
                model.threshold = ranked[min(len(ranked) - 1, int(self.quantile * len(ranked)))]
        return findings

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """Learn the rejected finding's lines and suppress its pattern. A finding of another
        model is left alone."""
        if finding.get("model") != self.model:
            return
        pattern = str(finding.get("pattern", ""))
        source = str(finding.get("source", ""))
        if not pattern.startswith(f"line|source={source}|words=") or not source:
            raise LineModelError(f"not a {self.model} finding: pattern {pattern!r}")
        self._suppressed.add(pattern)
        model = self._model(source)
        for example in finding.get("examples") or ():
            model.learn({}, str(example))

    def state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "model": self.model,
            "sources": {
                name: {"model": m.state(), "recent": list(self._recent[name])}
                for name, m in self._models.items()
            },
            "suppressed": sorted(self._suppressed),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("model") != self.model:
            raise LineModelError(f"not a {self.model} detector state of version {STATE_VERSION}")
        try:
            models, recent = {}, {}
            for name, s in dict(state["sources"]).items():
                model = LineRarityModel(fields=self.fields, quantile=self.quantile)
                model.load(s["model"])
                models[str(name)] = model
                recent[str(name)] = [float(x) for x in s["recent"]][-self.window :]
            suppressed = {str(p) for p in state["suppressed"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise LineModelError(f"{self.model} detector state is damaged: {exc!r}") from exc
        self._models, self._recent, self._suppressed = models, recent, suppressed
