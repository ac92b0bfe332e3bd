"""The entity behaviour detector: one instance per organisation, learning its users, hosts and
clients from normalised security events (syslog sshd/PAM/useradd, Windows logons, process
creation, services and group changes, web access logs) and proposing findings on logons
(:mod:`.logons`), first-seen changes on hosts (:mod:`.changes`) and response volumes
(:mod:`.volume`).

Every table of entities keeps at most ``cap`` entries, evicting the least recently seen (see
:class:`~qorgan.detection.anomaly.entities.EntityTable`); the whole state is plain JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import PurePath
from typing import Any
from zoneinfo import ZoneInfo

from qorgan.detection.anomaly.changes import THRESHOLD_BITS as CHANGE_THRESHOLD
from qorgan.detection.anomaly.changes import Change, HostBaseline
from qorgan.detection.anomaly.entities import (
    DEFAULT_CAP,
    EntityStateError,
    clean,
    example,
    need,
)
from qorgan.detection.anomaly.findings import Finding, contributions
from qorgan.detection.anomaly.logons import THRESHOLD_BITS as LOGON_THRESHOLD
from qorgan.detection.anomaly.logons import LogonBaseline
from qorgan.detection.anomaly.security_events import (
    AccountChange,
    ExecParents,
    Logon,
    ProcessStart,
    Response,
    ServiceInstall,
    facts,
)
from qorgan.detection.anomaly.volume import THRESHOLD_BITS as VOLUME_THRESHOLD
from qorgan.detection.anomaly.volume import VolumeBaseline
from qorgan.telemetry.batch import EventBatch

MODEL = "qorgan-entity-behaviour"
VERSION = "1.0"
#: Failure lines remembered per source address for a finding's examples (not saved).
FAILURE_EXAMPLES = 2

#: A logon finding's features in words, for its summary (the model's own words).
_LOGON_WORDS = {
    "logon.after_failures": "{actual} failed logons from that address just before it"
    " (typically {typical})",
    "logon.unusual_hour": "at {actual}:00, outside the usual hours ({typical})",
    "logon.new_source_ip": "from an address never seen for this user (known: {typical})",
}

#: Fields shown, in order, when an event without a message is rendered as an example.
_SHOWN = (
    "EventID", "TargetUserName", "IpAddress", "LogonType", "ParentImage", "Image",
    "CommandLine", "ServiceName", "ImagePath", "MemberName", "MemberSid", "SamAccountName",
    "c-ip", "c-username", "cs-method", "cs-uri-stem", "sc-status", "sc-bytes",
)  # fmt: skip


def render(event: Mapping[str, Any]) -> str:
    """An event as one short line: its syslog program and message, else its telling fields."""
    message = event.get("message")
    if isinstance(message, str):
        program = event.get("program")
        return f"{program}: {message}" if program else message
    return " ".join(f"{k}={event[k]}" for k in _SHOWN if event.get(k) is not None)


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def confidence(score: float, threshold: float, maturity: float) -> float:
    """How far the score is past the threshold (1/2 at it, toward 1 beyond), times how much
    history the baseline had (``maturity`` in [0, 1])."""
    margin = 1.0 - 0.5 * 2.0 ** (-(score - threshold) / 4.0)
    return round(max(0.0, min(1.0, margin * maturity)), 4)


class EntityBehaviour:
    """The :class:`~qorgan.detection.anomaly.detector.Detector` for one organisation.

    ``tz`` is the organisation's local time, in which hours of the day are judged. The warm-ups
    are the history each baseline needs before it may fire (see each module)."""

    model = MODEL
    version = VERSION

    def __init__(
        self,
        organisation: str = "default",
        *,
        tz: tzinfo | str = UTC,
        cap: int = DEFAULT_CAP,
        org_warmup: int = 100,
        hour_warmup: int = 20,
        user_warmup: int = 3,
        host_warmup: int = 100,
        process_warmup: int = 100,
        volume_warmup: int = 100,
    ) -> None:
        self.organisation = organisation
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.cap = cap
        self.logons = LogonBaseline(
            tz=self.tz,
            cap=cap,
            org_warmup=org_warmup,
            hour_warmup=hour_warmup,
            user_warmup=user_warmup,
        )
        self.hosts = HostBaseline(cap=cap, host_warmup=host_warmup, process_warmup=process_warmup)
        self.volume = VolumeBaseline(cap=cap, org_warmup=volume_warmup)
        self._failure_lines: dict[str, list[str]] = {}
        self._parents = ExecParents(cap)
        self.events = 0

    # -- the Detector protocol -------------------------------------------------------------
    def observe(self, batch: EventBatch) -> list[Finding]:
        found: list[Finding] = []
        for index, event in enumerate(batch.events):
            host = batch.hosts[index] if index < len(batch.hosts) else None
            time = batch.times[index] if index < len(batch.times) else None
            self.events += 1
            host_key = clean(
                host or event.get("Computer") or event.get("hostname") or event.get("node")
            )
            if host_key is None and batch.format == "auditd":
                # A bare audit.log names no machine: the file stands for it.
                host_key = f"file:{PurePath(batch.path).name}"
            if host_key is not None:
                self.hosts.seen(host_key)
            for fact in facts(event, host_key, self._parents):
                finding = self._one(fact, event, time, batch.path)
                if finding is not None:
                    found.append(finding)
        return found

    def absorb(self, finding: Mapping[str, Any]) -> None:
        detector = finding.get("detector")
        if detector == "entity.logon":
            self.logons.absorb(finding, _moment(finding.get("time")))
        elif detector in ("entity.process_pair", "entity.service", "entity.account"):
            self.hosts.absorb(finding)
        elif detector == "entity.volume":
            self.volume.absorb(finding)

    def state(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "version": VERSION,
            "organisation": self.organisation,
            "events": self.events,
            "logons": self.logons.state(),
            "hosts": self.hosts.state(),
            "volume": self.volume.state(),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        if need(state, "model", str) != MODEL:
            raise EntityStateError(f"state of model {state['model']!r}, not {MODEL!r}")
        if need(state, "organisation", str) != self.organisation:
            raise EntityStateError(
                f"state of organisation {state['organisation']!r}, not {self.organisation!r}"
            )
        try:
            self.logons.load(need(state, "logons", Mapping))
            self.hosts.load(need(state, "hosts", Mapping))
            self.volume.load(need(state, "volume", Mapping))
        except (TypeError, ValueError, AttributeError) as exc:
            raise EntityStateError(f"state cannot be read: {exc}") from exc
        self.events = need(state, "events", int)

    # -- one fact --------------------------------------------------------------------------
    def _one(
        self, fact: object, event: Mapping[str, Any], time: str | None, source: str
    ) -> Finding | None:
        line = example(time, clean(event.get("hostname") or event.get("Computer")), render(event))
        if isinstance(fact, Logon):
            return self._logon(fact, line, time, source)
        change: Change | None = None
        if isinstance(fact, ProcessStart):
            change = self.hosts.score_process(fact)
            self.hosts.learn_process(fact)
        elif isinstance(fact, ServiceInstall):
            change = self.hosts.score_service(fact)
            self.hosts.learn_service(fact)
        elif isinstance(fact, AccountChange):
            change = self.hosts.score_account(fact)
            self.hosts.learn_account(fact)
        elif isinstance(fact, Response):
            return self._response(fact, line, time, source)
        if change is None:
            return None
        host = self.hosts.hosts.get(change.entity["host"])
        maturity = min(1.0, (host.events if host else 0) / (4.0 * self.hosts.host_warmup))
        return Finding(
            detector=change.detector,
            model=MODEL,
            version=VERSION,
            time=time,
            source=source,
            entity=change.entity,
            score=round(change.score, 3),
            threshold=CHANGE_THRESHOLD,
            confidence=confidence(change.score, CHANGE_THRESHOLD, maturity),
            contributions=contributions(change.features),
            summary=change.summary,
            examples=(line,),
            pattern=change.pattern,
            identifiers=change.identifiers,
        )

    def _logon(self, fact: Logon, line: str, time: str | None, source: str) -> Finding | None:
        moment = _moment(time)
        features = self.logons.score(fact, moment)
        failure_lines = self._failure_lines.get(fact.ip or "", [])
        self.logons.learn(fact, moment)
        if not fact.success:
            if fact.ip is not None:
                lines = self._failure_lines.setdefault(fact.ip, [])
                lines[:] = ([line] if not lines else [lines[0], line])[-FAILURE_EXAMPLES:]
                if len(self._failure_lines) > self.cap:
                    del self._failure_lines[next(iter(self._failure_lines))]
            return None
        if not features:
            return None
        score = sum(f.bits for f in features)
        top = max(features, key=lambda f: f.bits)
        user = self.logons.users.get(fact.user) if fact.user else None
        maturity = min(1.0, self.logons.successes / 20.0) * (
            0.5 + 0.5 * min(1.0, (user.logons if user else 0) / 20.0)
        )
        entity = {"host": fact.host or "", "user": fact.user or ""}
        if fact.ip:
            entity["source_ip"] = fact.ip
        said = "; ".join(
            _LOGON_WORDS.get(f.name, "{name}: {actual}, typically {typical}").format(
                name=f.name, actual=f.actual, typical=f.typical
            )
            for f in features
        )
        examples = (*failure_lines, line) if top.name == "logon.after_failures" else (line,)
        return Finding(
            detector="entity.logon",
            model=MODEL,
            version=VERSION,
            time=time,
            source=source,
            entity={k: v for k, v in entity.items() if v},
            score=round(score, 3),
            threshold=LOGON_THRESHOLD,
            confidence=confidence(score, LOGON_THRESHOLD, maturity),
            contributions=contributions((f.name, f.bits, f.typical, f.actual) for f in features),
            summary=f"logon of {fact.user or '?'} on {fact.host} from {fact.ip or 'local'}: {said}",
            examples=examples,
            pattern=top.pattern,
            identifiers=(fact.user,) if fact.user else (),
        )

    def _response(self, fact: Response, line: str, time: str | None, source: str) -> Finding | None:
        moment = _moment(time)
        epoch = moment.timestamp() if moment else None
        scored = self.volume.score(fact)
        feature = "volume.response_bytes"
        if scored is None:
            scored = self.volume.score_window(fact, epoch)
            feature = "volume.window_bytes"
            basis = f"the median of this {fact.entity}'s busy hours"
        elif self.volume.basis(fact) is self.volume.org:
            basis = "the median response of the organisation"
        else:
            basis = f"the median response of this {fact.entity}"
        self.volume.learn(fact)
        self.volume.learn_window(fact, epoch)
        if scored is None:
            return None
        surprise, typical, actual, key = scored
        own = self.volume.entities.get(fact.key)
        maturity = 0.5 + 0.5 * min(1.0, (len(own) if own else 0) / 100.0)
        what = "a response" if feature == "volume.response_bytes" else "an hour of responses"
        return Finding(
            detector="entity.volume",
            model=MODEL,
            version=VERSION,
            time=time,
            source=source,
            entity={fact.entity: fact.key},
            score=round(surprise, 3),
            threshold=VOLUME_THRESHOLD,
            confidence=confidence(surprise, VOLUME_THRESHOLD, maturity),
            contributions=contributions([(feature, surprise, typical, actual)]),
            summary=f"{what} of {actual} to {fact.entity} {fact.key}, where {basis} is {typical}",
            examples=(line,),
            pattern=key,
            identifiers=(fact.user,) if fact.user else (),
        )
