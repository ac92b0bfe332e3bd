"""Sessions out of event streams, scored by the sequence model of
:mod:`qorgan.detection.anomaly.sequences`: a :class:`~qorgan.detection.anomaly.detector.Detector`.

Events are grouped into sessions by a key (:func:`session_key`): a Windows logon id
(``TargetLogonId``, else ``SubjectLogonId``) on its host, an sshd process id on its host, or an
HDFS block id found in the message. Each kind of session has a model of its own, because their
tokens (Windows event ids, sshd templates, HDFS templates) are different vocabularies. A session
ends at an explicit end (:func:`ends_session`: Windows logoff 4634/4647; sshd "session closed",
"Connection closed", a pre-authentication disconnect), after ``idle_timeout`` seconds of *event*
time without an event, or when it reaches ``max_length`` tokens; then it is scored, and learned
when it is not flagged (a flagged session is learned only through a person's rejection, so a
repeated attack does not teach itself as normal).

The threshold of a kind comes from its offline model (:meth:`SessionModel.fit`) when one is
given; else it is learned on the stream: every closed session is scored before it is learned (a
held-out score), and once ``warmup`` such scores exist the threshold is re-set from the latest
``window`` of them every ``recalibrate_every`` sessions. Before that, nothing is flagged.

Memory is bounded: at most ``max_open`` open sessions (the least recently active is closed, and
scored, first; counted in :attr:`SessionDetector.evicted`) of at most ``max_length`` tokens.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qorgan.detection.anomaly.findings import MAX_EXAMPLES, Finding, contributions
from qorgan.detection.anomaly.sequences import SequenceModelError, SessionModel, clean_token
from qorgan.telemetry.batch import EventBatch

MODEL = "qorgan-session-ngram"
VERSION = "1"
DETECTOR = "sequence"
#: Windows logon ids of the machine's own long-lived sessions (SYSTEM, LOCAL/NETWORK SERVICE):
#: not a person's session, and never closed.
MACHINE_LOGON_IDS = frozenset({"0x0", "0x3e7", "0x3e4", "0x3e5", "0", "999", "996", "997"})
WINDOWS_LOGOFF = frozenset({"4634", "4647"})
SSHD_ENDS = frozenset({"session_closed", "connection_closed", "preauth_disconnect"})
SSHD_END_TEXT = re.compile(
    r"session closed for user|Connection closed by|Received disconnect from .*\[preauth\]"
)
HDFS_BLOCK = re.compile(r"blk_-?\d+")
_DIGITS = re.compile(r"0x[0-9a-fA-F]+|\d+")
EXAMPLE_CHARS = 300
RECENT = 100
USER_FIELDS = ("TargetUserName", "SubjectUserName", "user")

#: ``(kind, id)`` of the session an event belongs to, or None.
KeyOf = Callable[[Mapping[str, Any], str | None], tuple[str, str] | None]


def _text(event: Mapping[str, Any]) -> str:
    for name in ("message", "Message", "Content", "msg"):
        value = event.get(name)
        if isinstance(value, str):
            return value
    return ""


def default_token(event: Mapping[str, Any]) -> str:
    """The token of an event: its ``EventID``, else its message with numbers masked (a crude
    template; pass ``token_of`` a template miner's ids for a better one)."""
    event_id = event.get("EventID")
    if event_id is not None:
        return str(event_id)
    return _DIGITS.sub("<*>", _text(event)).strip() or "<empty>"


def session_key(event: Mapping[str, Any], host: str | None) -> tuple[str, str] | None:
    """The session of ``event`` on ``host``: ``("windows", "host|0x1a2b")``,
    ``("sshd", "host|4211")``, ``("hdfs", "blk_-123")``, or None when it has none."""
    host = host or event.get("Computer") or event.get("hostname") or ""
    for name in ("TargetLogonId", "SubjectLogonId"):
        value = event.get(name)
        if value is not None and str(value).lower() not in MACHINE_LOGON_IDS:
            return "windows", f"{host}|{str(value).lower()}"
    if event.get("program") == "sshd" and event.get("pid") is not None:
        return "sshd", f"{host}|{event['pid']}"
    block = HDFS_BLOCK.search(_text(event))
    if block is not None:
        return "hdfs", block.group(0)
    return None


def ends_session(kind: str, event: Mapping[str, Any]) -> bool:
    """Whether ``event`` is the explicit end of its session of ``kind``."""
    if kind == "windows":
        return str(event.get("EventID")) in WINDOWS_LOGOFF
    if kind == "sshd":
        return event.get("event_type") in SSHD_ENDS or bool(SSHD_END_TEXT.search(_text(event)))
    return False


def _seconds(time: str | None) -> float | None:
    if not time:
        return None
    try:
        return datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class OpenSession:
    """A session still receiving events."""

    kind: str
    id: str
    source: str
    host: str | None
    tokens: list[str] = field(default_factory=list)
    times: list[str | None] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    last: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "source": self.source,
            "host": self.host,
            "tokens": self.tokens,
            "times": self.times,
            "examples": self.examples,
            "users": self.users,
            "last": self.last,
        }


@dataclass(slots=True)
class KindState:
    """What the detector knows of one kind of session: its model and held-out scores."""

    model: SessionModel
    offline: bool
    window: deque[float]
    since_calibration: int = 0


class SessionDetector:
    """Scores sessions of events with a sequence model per kind of session; see the module doc.

    ``models`` are offline-trained models by kind (``{"hdfs": SessionModel.fit(...)}``); other
    kinds are learned on the stream. ``token_of`` turns an event into its token (a template
    miner's id, by default :func:`default_token`); ``key_of`` finds its session.
    """

    model = MODEL
    version = VERSION

    def __init__(
        self,
        models: Mapping[str, SessionModel] | None = None,
        *,
        token_of: Callable[[Mapping[str, Any]], str] = default_token,
        key_of: KeyOf = session_key,
        idle_timeout: float = 1800.0,
        max_open: int = 10_000,
        max_length: int = 1_000,
        order: int = 3,
        quantile: float = 0.995,
        warmup: int = 200,
        window: int = 2_000,
        recalibrate_every: int = 50,
        keep_recent: int = RECENT,
    ) -> None:
        if max_open < 1 or max_length < 1:
            raise SequenceModelError("max_open and max_length must be at least 1")
        if not 0.0 < quantile < 1.0:
            raise SequenceModelError(f"the quantile must be between 0 and 1, not {quantile}")
        self.token_of = token_of
        self.key_of = key_of
        self.idle_timeout = idle_timeout
        self.max_open = max_open
        self.max_length = max_length
        self.order = order
        self.quantile = quantile
        self.warmup = warmup
        self.window = window
        self.recalibrate_every = recalibrate_every
        self.kinds: dict[str, KindState] = {
            kind: KindState(model, True, deque(maxlen=window))
            for kind, model in (models or {}).items()
        }
        self.open: OrderedDict[tuple[str, str], OpenSession] = OrderedDict()
        #: the latest event time seen (epoch seconds): an event without a time is taken to
        #: happen then, so idle sessions still close in order
        self.clock: float | None = None
        #: sessions closed early because ``max_open`` was reached
        self.evicted = 0
        #: sessions scored (closed), by kind
        self.closed: dict[str, int] = {}
        #: the latest closed sessions, ``(kind, id, tokens)``, for reports (not in the state)
        self.recent: deque[tuple[str, str, tuple[str, ...]]] = deque(maxlen=keep_recent)

    # -- the stream ------------------------------------------------------------------------

    def observe(self, batch: EventBatch) -> list[Finding]:
        """Group the events of ``batch`` into sessions; score and learn every session that
        closes; the findings in the order their sessions closed."""
        findings: list[Finding] = []
        for i, event in enumerate(batch.events):
            host = batch.hosts[i] if i < len(batch.hosts) else None
            time = batch.times[i] if i < len(batch.times) else None
            now = _seconds(time)
            if now is not None:
                self.clock = now if self.clock is None else max(self.clock, now)
                findings.extend(self._close_idle(now))
            key = self.key_of(event, host)
            if key is None:
                continue
            session = self.open.get(key)
            if session is None:
                if len(self.open) >= self.max_open:
                    _, oldest = self.open.popitem(last=False)
                    self.evicted += 1
                    findings.extend(self._close(oldest))
                session = OpenSession(key[0], key[1], batch.path, host)
                self.open[key] = session
            else:
                self.open.move_to_end(key)
            self._add(session, event, time)
            seen = now if now is not None else self.clock
            if seen is not None:
                session.last = seen if session.last is None else max(session.last, seen)
            if ends_session(key[0], event) or len(session.tokens) >= self.max_length:
                del self.open[key]
                findings.extend(self._close(session))
        return findings

    def flush(self) -> list[Finding]:
        """Close and score every open session (the end of a hunt over a file)."""
        findings: list[Finding] = []
        while self.open:
            _, session = self.open.popitem(last=False)
            findings.extend(self._close(session))
        return findings

    def _add(self, session: OpenSession, event: Mapping[str, Any], time: str | None) -> None:
        token = clean_token(self.token_of(event))
        session.tokens.append(token)
        session.times.append(time)
        if len(session.examples) < MAX_EXAMPLES:
            line = _text(event) or " ".join(
                f"{k}={v}" for k, v in event.items() if v not in (None, "")
            )
            session.examples.append(f"{time or '-'} {token}: {line}"[:EXAMPLE_CHARS])
        for name in USER_FIELDS:
            value = event.get(name)
            if isinstance(value, str) and value not in ("", "-") and value not in session.users:
                session.users.append(value)

    def _close_idle(self, now: float) -> list[Finding]:
        findings: list[Finding] = []
        while self.open:
            key, session = next(iter(self.open.items()))
            if session.last is None or now - session.last <= self.idle_timeout:
                break
            del self.open[key]
            findings.extend(self._close(session))
        return findings

    # -- scoring ---------------------------------------------------------------------------

    def _kind(self, kind: str) -> KindState:
        state = self.kinds.get(kind)
        if state is None:
            state = KindState(SessionModel(self.order), False, deque(maxlen=self.window))
            self.kinds[kind] = state
        return state

    def _close(self, session: OpenSession) -> list[Finding]:
        kind = self._kind(session.kind)
        self.closed[session.kind] = self.closed.get(session.kind, 0) + 1
        self.recent.append((session.kind, session.id, tuple(session.tokens)))
        model = kind.model
        if model.sessions == 0:
            model.learn(session.tokens)
            return []
        score = model.score(session.tokens)
        # Judged by the threshold as it is now: the calibration below may move it.
        threshold = model.threshold
        flagged = score >= threshold
        if not kind.offline:
            kind.window.append(score)
            kind.since_calibration += 1
            ready = len(kind.window) >= self.warmup
            if ready and kind.since_calibration >= self.recalibrate_every:
                model.calibrate(list(kind.window), self.quantile)
                kind.since_calibration = 0
        if not flagged:
            model.learn(session.tokens)
            return []
        return [self._finding(session, model, score, threshold)]

    def _finding(
        self, session: OpenSession, model: SessionModel, score: float, threshold: float
    ) -> Finding:
        top = model.explain(session.tokens)
        position = top[0].position
        times = [t for t in session.times if t]
        if position is not None and position < len(session.times) and session.times[position]:
            time = session.times[position]
        else:
            time = times[-1] if times else None
        entity = {"session": session.kind, "id": session.id}
        if session.host:
            entity["host"] = session.host
        if session.users:
            entity["user"] = session.users[0]
        lead = top[0]
        summary = (
            f"{session.kind} session {session.id} ({len(session.tokens)} events): "
            f"{lead.description} is improbable (observed {lead.actual:.3g}, "
            f"typically {lead.typical:.3g})"
        )
        return Finding(
            detector=DETECTOR,
            model=MODEL,
            version=VERSION,
            time=time,
            source=session.source,
            entity=entity,
            score=score,
            threshold=threshold,
            confidence=model.confidence(score),
            contributions=contributions((f.name, f.surprisal, f.typical, f.actual) for f in top),
            summary=summary,
            examples=tuple(session.examples),
            pattern=f"{DETECTOR}|{session.kind}|"
            + json.dumps([f.key for f in model.over(session.tokens)], ensure_ascii=False),
            identifiers=tuple(session.users),
        )

    # -- people and state ------------------------------------------------------------------

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """A person rejected ``finding``: the features that put it over the threshold (the
        pattern's transitions, tokens or counts) score as normal for that kind of session from
        now on."""
        pattern = str(finding.get("pattern", ""))
        prefix, _, rest = pattern.partition("|")
        kind, _, listed = rest.partition("|")
        try:
            keys = json.loads(listed)
        except ValueError:
            keys = None
        if prefix != DETECTOR or not kind or not isinstance(keys, list) or not keys:
            raise SequenceModelError(f"not a session finding's pattern: {pattern!r}")
        model = self._kind(kind).model
        for key in keys:
            model.allow(str(key))

    def state(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "version": VERSION,
            "kinds": {
                kind: {
                    "model": s.model.state(),
                    "offline": s.offline,
                    "window": list(s.window),
                    "since_calibration": s.since_calibration,
                }
                for kind, s in self.kinds.items()
            },
            "open": [s.to_dict() for s in self.open.values()],
            "evicted": self.evicted,
            "closed": dict(self.closed),
            "clock": self.clock,
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if state.get("model") != MODEL:
            raise SequenceModelError(f"not a {MODEL} state (model {state.get('model')!r})")
        try:
            kinds = {
                kind: KindState(
                    SessionModel.from_state(s["model"]),
                    bool(s["offline"]),
                    deque((float(v) for v in s["window"]), maxlen=self.window),
                    int(s["since_calibration"]),
                )
                for kind, s in state["kinds"].items()
            }
            opened: OrderedDict[tuple[str, str], OpenSession] = OrderedDict()
            for s in state["open"]:
                session = OpenSession(**s)
                opened[(session.kind, session.id)] = session
            evicted = int(state["evicted"])
            clock = None if state.get("clock") is None else float(state["clock"])
            closed = {str(k): int(v) for k, v in state["closed"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SequenceModelError(f"a session detector state is damaged: {exc!r}") from exc
        self.kinds, self.open, self.evicted, self.closed = kinds, opened, evicted, closed
        self.clock = clock
