"""A sequence model of sessions (an HDFS block, an SSH connection, a Windows logon): which
tokens (template or event ids) follow which, and how often each token occurs in a session.

Trained on normal sessions only. A session is anomalous when one of its *features* is
improbable under the model; the score is the largest surprisal (``-ln p``, in nats) among:

- its **transitions**: each token given the ``order - 1`` tokens before it, with the session
  padded by a start and an end mark (so a session cut short ends with an improbable
  "token -> end"). Probabilities are interpolated Witten-Bell estimates that back off from
  the longest context to shorter ones and to the token's overall frequency, so an unseen
  transition of known tokens is improbable but finite, and an unseen token is more so;
- its **token counts**: how many times each known token occurs in the session, against the
  distribution of that count over training sessions (an HDFS block written to three data
  nodes logs "receiving block" three times; a block with seven is abnormal even if each
  transition was seen). The counts also carry the session's length.

The threshold comes from the training data alone: the sessions are split into folds, each
fold is scored by a model trained on the others, and the threshold sits just above the
``quantile`` of those held-out scores, so about ``1 - quantile`` of normal sessions are flagged.

Every score is explained by the features that made it (:meth:`SessionModel.explain`), each with
the probability observed (actual) and the one typical of its context, ready for
:func:`~qorgan.detection.anomaly.findings.contributions`. A person who rejects a finding makes
its feature normal (:meth:`SessionModel.allow`).

Why our own and not ``nltk.lm``: nltk's models are slow to score (a Python object per n-gram
query), keep their state in pickles, and have no count profile or calibration; the estimator here
is some forty lines, its state is plain JSON, and it trains on the HDFS benchmark in about a
second.
"""

from __future__ import annotations

import bisect
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qorgan.core.errors import QorganError

#: Joins the tokens of an n-gram in the model's tables: a token may hold spaces (a message with
#: its numbers masked), never this control character (see :func:`clean_token`).
SEP = "\x1f"
START = "<s>"
END = "</s>"
STATE_KIND = "qorgan-session-ngram"
STATE_VERSION = 1
#: Pseudo-count of an unseen count value of a token (see :meth:`SessionModel._count_surprisal`).
COUNT_PRIOR = 0.1
#: Calibration scores kept in the state, to turn a score into a confidence.
KEPT_CALIBRATION = 1000


class SequenceModelError(QorganError):
    """A session model cannot be built, read or used as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Feature:
    """One scored feature of a session: a transition, an unseen token or a token count.

    ``key`` identifies it across sessions (a rejection allows that key); ``actual`` and
    ``typical`` are probabilities for transitions, counts for token counts."""

    key: str
    kind: str
    description: str
    surprisal: float
    actual: float | int
    typical: float | int
    position: int | None = None
    #: the transition's tokens, context first (empty for other kinds)
    gram: tuple[str, ...] = ()
    #: What it is about, without words: ``a b -> c`` for a transition, the token for the others.
    subject: str = ""

    @property
    def name(self) -> str:
        """The feature's name in a finding: its kind's key and its subject
        (``sequence.transition: a b -> c``), so the console names the kind in the reader's
        language; :attr:`description` is the same in English words, for summaries."""
        return f"sequence.{self.kind}: {self.subject}"


def _grams(tokens: Sequence[str], order: int) -> list[tuple[str, ...]]:
    padded = [START] * (order - 1) + list(tokens) + [END]
    return [tuple(padded[i : i + order]) for i in range(len(padded) - order + 1)]


def clean_token(token: str) -> str:
    """``token`` without the n-gram separator, so it can be a token."""
    return token.replace(SEP, " ")


def transition_key(gram: Sequence[str]) -> str:
    """The key of a transition ``(context..., token)``: ``transition|5 22|11``."""
    return f"transition|{' '.join(gram[:-1])}|{gram[-1]}"


class SessionModel:
    """An n-gram model with Witten-Bell backoff and a token-count profile over sessions.

    Build one with :meth:`fit` (which also sets the threshold) or :meth:`from_state`; score with
    :meth:`score`, explain with :meth:`explain`.
    """

    def __init__(self, order: int = 3) -> None:
        if order < 1:
            raise SequenceModelError(f"the n-gram order must be at least 1, not {order}")
        self.order = order
        #: counts[k][gram of k tokens joined by a space]
        self.grams: list[Counter[str]] = [Counter() for _ in range(order + 1)]
        #: per context of k-1 tokens: how many times seen, and how many distinct followers
        self.contexts: list[Counter[str]] = [Counter() for _ in range(order + 1)]
        self.followers: list[Counter[str]] = [Counter() for _ in range(order + 1)]
        self.sessions = 0
        #: token -> {count in a session: sessions with that count}; zero counts are implied
        self.counts: dict[str, Counter[int]] = {}
        #: token -> sessions holding it; tokens most sessions hold (absence scored), lazily
        self.present: Counter[str] = Counter()
        self.common: set[str] = set()
        self.total = 0
        self.threshold = math.inf
        self.quantile = 0.995
        self.calibration: list[float] = []
        self.allowed: set[str] = set()

    # -- learning --------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        sessions: Sequence[Sequence[str]],
        *,
        order: int = 3,
        quantile: float = 0.995,
        folds: int = 5,
        seed: int = 0,
    ) -> SessionModel:
        """A model of ``sessions`` (normal ones only), with its threshold calibrated by
        ``folds``-fold cross-validation so that about ``1 - quantile`` of them score above it."""
        if not 0.0 < quantile < 1.0:
            raise SequenceModelError(f"the quantile must be between 0 and 1, not {quantile}")
        if len(sessions) < 2 * folds:
            raise SequenceModelError(
                f"{len(sessions)} training sessions are too few to calibrate a threshold "
                f"with {folds} folds (at least {2 * folds})"
            )
        model = cls(order)
        model.learn_all(sessions)
        order_of = list(range(len(sessions)))
        random.Random(seed).shuffle(order_of)
        held_out: list[float] = []
        for fold in range(folds):
            out = set(order_of[fold::folds])
            part = cls(order)
            part.learn_all(s for i, s in enumerate(sessions) if i not in out)
            held_out.extend(part.score(sessions[i]) for i in sorted(out))
        model.calibrate(held_out, quantile)
        return model

    def learn_all(self, sessions: Iterable[Sequence[str]]) -> None:
        for tokens in sessions:
            self.learn(tokens)

    def learn(self, tokens: Sequence[str]) -> None:
        """Take one normal session into the model."""
        for k in range(1, self.order + 1):
            for gram in _grams(tokens, k):
                key = SEP.join(gram)
                context = SEP.join(gram[:-1])
                if self.grams[k][key] == 0:
                    self.followers[k][context] += 1
                self.grams[k][key] += 1
                self.contexts[k][context] += 1
        self.total += len(tokens) + 1
        self.sessions += 1
        for token, n in Counter(tokens).items():
            self.counts.setdefault(token, Counter())[n] += 1
            self.present[token] += 1
            if 2 * self.present[token] >= self.sessions:
                self.common.add(token)

    def calibrate(self, scores: Sequence[float], quantile: float) -> None:
        """Set the threshold just above the ``quantile`` of held-out normal ``scores``: midway
        to the next higher score, so ties at the quantile are not flagged."""
        ordered = sorted(s for s in scores if math.isfinite(s))
        if not ordered:
            raise SequenceModelError("no finite calibration score")
        index = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
        at = ordered[index]
        above = [s for s in ordered[index:] if s > at]
        self.threshold = (at + above[0]) / 2 if above else at + 1.0
        self.quantile = quantile
        step = max(1, math.ceil(len(ordered) / KEPT_CALIBRATION))
        self.calibration = ordered[::step]

    def allow(self, key: str) -> None:
        """A person rejected a finding on feature ``key``: it scores as normal from now on."""
        self.allowed.add(key)

    # -- scoring ---------------------------------------------------------------------------

    def _unigram(self, token: str) -> float:
        vocabulary = len(self.grams[1]) + 1  # and one slot for every unseen token
        return (self.grams[1][token] + 0.5) / (self.total + 0.5 * vocabulary)

    def probability(self, gram: Sequence[str]) -> float:
        """P(last token | the tokens before it), interpolated Witten-Bell down to unigrams."""
        if len(gram) == 1:
            return self._unigram(gram[0])
        k = len(gram)
        lower = self.probability(gram[1:])
        context = SEP.join(gram[:-1])
        seen = self.contexts[k][context]
        if seen == 0:
            return lower
        distinct = self.followers[k][context]
        weight = seen / (seen + distinct)
        return weight * self.grams[k][SEP.join(gram)] / seen + (1 - weight) * lower

    def typical(self, context: Sequence[str]) -> float:
        """The probability a normal follower of ``context`` has on average (sum of p squared
        over the followers seen), to show beside an improbable one; an unseen context backs off
        to its shorter ends, as :meth:`probability` does."""
        context = list(context)
        while True:
            k = len(context) + 1
            prefix = SEP.join(context)
            followers = [
                g.split(SEP)
                for g in self.grams[k]
                if (g.rsplit(SEP, 1)[0] if k > 1 else "") == prefix
            ]
            if followers:
                return sum(self.probability(context + g[-1:]) ** 2 for g in followers)
            if not context:
                return 0.0
            context = context[1:]

    def _count_surprisal(self, token: str, n: int) -> float:
        """Surprisal of a session holding known ``token`` ``n`` times (0 included): the share of
        training sessions with that count, with :data:`COUNT_PRIOR` for every count value."""
        seen = self.counts[token]
        zero = self.sessions - self.present[token]
        frequency = zero if n == 0 else seen[n]
        values = len(seen) + (1 if zero else 0) + 1
        return -math.log((frequency + COUNT_PRIOR) / (self.sessions + COUNT_PRIOR * values))

    def _usual(self, token: str) -> int:
        """The count of ``token`` most training sessions have (the smallest on a tie)."""
        zero = self.sessions - self.present[token]
        return max([*self.counts[token].items(), (0, zero)], key=lambda kv: (kv[1], -kv[0]))[0]

    def _counted(self, present: Mapping[str, int]) -> list[str]:
        """The known tokens whose count in a session is scored: those it holds, and those most
        training sessions hold (the absence of a token that fewer than half of the sessions
        hold costs at most ln 2, so leaving the others out keeps scoring independent of the
        vocabulary's size)."""
        self.common = {t for t in self.common if 2 * self.present[t] >= self.sessions}
        return sorted((present.keys() & self.counts.keys()) | self.common)

    def score(self, tokens: Sequence[str]) -> float:
        """How anomalous a session is: the largest surprisal of its features (see
        :meth:`features`), in nats. The lean path of the same computation."""
        if self.sessions == 0:
            raise SequenceModelError("the model has not learned any session")
        if self.allowed:
            return max(f.surprisal for f in self.features(tokens))
        best = max(-math.log(self.probability(g)) for g in _grams(tokens, self.order))
        present = Counter(tokens)
        for token in present.keys() - self.counts.keys():
            best = max(best, -math.log(self._unigram(token)))
        for token in self._counted(present):
            best = max(best, self._count_surprisal(token, present.get(token, 0)))
        return best

    def features(self, tokens: Sequence[str]) -> list[Feature]:
        """Every scored feature of a session, in order: its transitions, its unseen tokens, and
        the counts of the known tokens it holds or most sessions hold."""
        if self.sessions == 0:
            raise SequenceModelError("the model has not learned any session")
        out: list[Feature] = []
        for position, gram in enumerate(_grams(tokens, self.order)):
            p = self.probability(gram)
            key = transition_key(gram)
            out.append(
                Feature(
                    key=key,
                    kind="transition",
                    description=f"{' '.join(gram[:-1])} -> {gram[-1]}",
                    subject=f"{' '.join(gram[:-1])} -> {gram[-1]}",
                    surprisal=0.0 if key in self.allowed else -math.log(p),
                    actual=p,
                    typical=0.0,  # filled in by explain(): costly, and only for the top ones
                    position=position,
                    gram=gram,
                )
            )
        present = Counter(tokens)
        for token in sorted(present.keys() - self.counts.keys()):
            key = f"token|{token}"
            p = self._unigram(token)
            out.append(
                Feature(
                    key=key,
                    kind="unseen_token",
                    description=f"token {token} never seen in training",
                    subject=token,
                    surprisal=0.0 if key in self.allowed else -math.log(p),
                    actual=present[token],
                    typical=0,
                )
            )
        for token in self._counted(present):
            n = present.get(token, 0)
            surprisal, usual = self._count_surprisal(token, n), self._usual(token)
            key = f"count|{token}|{n}"
            out.append(
                Feature(
                    key=key,
                    kind="count",
                    description=f"token {token} occurs {n} times (usually {usual})",
                    subject=token,
                    surprisal=0.0 if key in self.allowed else surprisal,
                    actual=n,
                    typical=usual,
                )
            )
        return out

    def flagged(self, tokens: Sequence[str]) -> bool:
        return self.score(tokens) >= self.threshold

    def over(self, tokens: Sequence[str]) -> list[Feature]:
        """The features at or above the threshold, most surprising first: allowing all of them
        (:meth:`allow`) makes the session normal."""
        return sorted(
            (f for f in self.features(tokens) if f.surprisal >= self.threshold),
            key=lambda f: -f.surprisal,
        )

    def confidence(self, score: float) -> float:
        """Share of held-out normal training sessions that scored below ``score``."""
        if not self.calibration:
            return 0.0
        return bisect.bisect_left(self.calibration, score) / len(self.calibration)

    def explain(self, tokens: Sequence[str], limit: int = 5) -> list[Feature]:
        """The features that made the score, most surprising first: every feature at or above
        half the threshold (at least the top one), at most ``limit``; transitions get their
        typical probability."""
        ranked = sorted(self.features(tokens), key=lambda f: -f.surprisal)
        cut = self.threshold / 2 if math.isfinite(self.threshold) else 0.0
        top = [f for f in ranked if f.surprisal >= cut and f.surprisal > 0][:limit] or ranked[:1]
        out = []
        for f in top:
            if f.kind == "transition":
                f = replace(f, typical=self.typical(f.gram[:-1]))
            out.append(f)
        return out

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything learned, as plain JSON (no pickles)."""
        return {
            "kind": STATE_KIND,
            "version": STATE_VERSION,
            "order": self.order,
            "sessions": self.sessions,
            "grams": [dict(c) for c in self.grams],
            "counts": {t: {str(n): s for n, s in c.items()} for t, c in self.counts.items()},
            "threshold": self.threshold if math.isfinite(self.threshold) else None,
            "quantile": self.quantile,
            "calibration": self.calibration,
            "allowed": sorted(self.allowed),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> SessionModel:
        """The model :meth:`state` described; a clear error when it is not one."""
        if state.get("kind") != STATE_KIND:
            raise SequenceModelError(f"not a session model state (kind {state.get('kind')!r})")
        if state.get("version") != STATE_VERSION:
            raise SequenceModelError(f"unknown session model state version {state.get('version')}")
        try:
            model = cls(int(state["order"]))
            model.sessions = int(state["sessions"])
            for k, grams in enumerate(state["grams"]):
                if k > model.order:
                    raise SequenceModelError("more n-gram orders than the model's order")
                for key, n in grams.items():
                    model.grams[k][key] = int(n)
                    context = SEP.join(key.split(SEP)[:-1]) if k > 1 else ""
                    model.contexts[k][context] += int(n)
                    model.followers[k][context] += 1
            model.counts = {
                t: Counter({int(n): int(s) for n, s in c.items()})
                for t, c in state["counts"].items()
            }
            model.present = Counter({t: sum(c.values()) for t, c in model.counts.items()})
            model.common = {t for t, n in model.present.items() if 2 * n >= model.sessions}
            model.total = sum(model.grams[1].values())
            threshold = state["threshold"]
            model.threshold = math.inf if threshold is None else float(threshold)
            model.quantile = float(state["quantile"])
            model.calibration = [float(s) for s in state["calibration"]]
            model.allowed = set(state["allowed"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SequenceModelError(f"a session model state is damaged: {exc!r}") from exc
        return model


def read_sessions(lines: Iterable[str]) -> list[list[str]]:
    """Sessions as DeepLog publishes them: one a line, tokens separated by white space; an
    empty line is a session of length 0."""
    return [line.split() for line in lines]


def read_session_file(path: str | Path) -> list[list[str]]:
    """The sessions of a file in DeepLog's format (see :func:`read_sessions`), one per line;
    a clear error when the file cannot be read as text."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SequenceModelError("no such file", source=str(path)) from exc
    except IsADirectoryError as exc:
        raise SequenceModelError("a folder, not a file of sessions", source=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise SequenceModelError(
            f"not UTF-8 text (byte {exc.start}): expected one session of tokens a line",
            source=str(path),
        ) from exc
    except OSError as exc:
        raise SequenceModelError(f"cannot be read: {exc.strerror}", source=str(path)) from exc
    if "\x00" in text:
        raise SequenceModelError(
            "holds NUL bytes: expected one session of tokens a line", source=str(path)
        )
    return read_sessions(text.splitlines())
