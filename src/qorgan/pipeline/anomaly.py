"""Anomaly models in live monitoring: one :class:`AnomalySuite` per organisation and partition.

Each batch a detector reads is scored by its organisation's suite after the rules. Findings are
stored as proposals (``incidents.findings``), never as alerts: a person confirms or rejects
each. What people decided reaches the models here: every :data:`REFRESH_SECONDS` (and before
the first batch of an organisation) the suite is given the organisation's exclusions
(objections) and rejected patterns from the store, and runs the models the organisation
approved in its register. A default model the register lacks is entered there, unapproved, at
the organisation's first batch: it runs once a person approves it (``qorgan anomaly approve``).
Retraining is explicit: when a person records it in the register (``qorgan anomaly retrained``),
the model's baselines are dropped at the next refresh and it learns again from the events that
follow, warm-up first; the suite's state keeps which retraining its baselines start from, so a
restart neither repeats nor misses it.

The suites' baselines are committed with the detector's position (the correlation windows'
commit), so a restart continues from the baselines of the last committed offset, and a replayed
batch finds the same findings again, which the store keeps once.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.db import unit_of_work
from qorgan.detection.anomaly.defaults import DEFAULT_MODELS
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.anomaly.suite import AnomalySuite
from qorgan.detection.errors import DetectionError
from qorgan.incidents import findings as store
from qorgan.telemetry.batch import EventBatch

log = logging.getLogger(__name__)

#: How often each organisation's objections, rejections and approvals are read again
#: (seconds): an objection takes effect in live monitoring within this time.
REFRESH_SECONDS = 5.0
ACTOR = "collector"


class LiveAnomaly:
    """The suites of one partition's organisations, and their findings not yet stored."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        make_suite: Callable[..., AnomalySuite],
        key: bytes,
        *,
        refresh: float = REFRESH_SECONDS,
    ) -> None:
        """``make_suite(organisation, identify=..., models=...)`` builds an organisation's suite
        (:func:`~qorgan.detection.anomaly.defaults.default_suite`); ``key`` is the key of
        the objections' keyed hashes (:func:`qorgan.incidents.findings.exclusion_key`)."""
        self.factory = factory
        self._make_suite = make_suite
        self._key = key
        #: The models each organisation approved, as its suite runs them.
        self._approved: dict[int, frozenset[str]] = {}
        self.refresh = refresh
        self.suites: dict[int, AnomalySuite] = {}
        self._refreshed: dict[int, float] = {}
        #: Per organisation, the last exclusion its suite was given (exclusions are only added:
        #: each refresh reads the new ones, not every objection again).
        self._excluded_up_to: dict[int, int] = {}
        self._pending: dict[int, list[Finding]] = defaultdict(list)
        self.stored = 0
        #: Batches the models failed on (logged; the rules detected them as usual).
        self.failures = 0
        #: Findings the store would refuse (logged with the reason, never stored).
        self.refused = 0

    def _identify(self, identifier: str) -> str:
        return store.identifier_digest(identifier, self._key)

    def make_suite(self, organisation_id: int) -> AnomalySuite:
        self._excluded_up_to.pop(organisation_id, None)  # a new suite is given them all
        return self._make_suite(
            str(organisation_id),
            identify=self._identify,
            models=self._approved.get(organisation_id, frozenset()),
        )

    def suite(self, organisation_id: int) -> AnomalySuite:
        found = self.suites.get(organisation_id)
        if found is None:
            found = self.suites[organisation_id] = self.make_suite(organisation_id)
        if time.monotonic() - self._refreshed.get(organisation_id, -1e18) >= self.refresh:
            found = self._decisions(organisation_id, found)
        return found

    def _decisions(self, organisation_id: int, suite: AnomalySuite) -> AnomalySuite:
        try:
            with unit_of_work(self.factory) as session:
                approved = register_default_models(session, organisation_id, ACTOR)
                stamps = retraining_stamps(session, organisation_id)
                due = {
                    name
                    for name, stamp in stamps.items()
                    if name in approved and suite.retrained.get(name) != stamp
                }
                if approved != self._approved.get(organisation_id) or due:
                    # Approvals changed, or a person retrained a model: the models approved
                    # now, with what they had learned, except a retrained one's baselines.
                    self._approved[organisation_id] = approved
                    learned = suite.state()
                    suite = self.suites[organisation_id] = self.make_suite(organisation_id)
                    suite.load(learned, fresh=due)
                    suite.retrained.update({name: stamps[name] for name in due})
                    for name in sorted(due):
                        log.info(
                            "anomaly: organisation %d's %s starts again (retrained %s)",
                            organisation_id,
                            name,
                            stamps[name],
                        )
                excluded, self._excluded_up_to[organisation_id] = store.new_exclusions(
                    session, organisation_id, self._excluded_up_to.get(organisation_id, 0)
                )
                suite.exclude(excluded)
                suite.reject(
                    {**r.finding, "fingerprint": r.fingerprint, "model": r.model}
                    for r in store.rejected_patterns(session, organisation_id)
                )
        except SQLAlchemyError as exc:  # the models go on with what they had
            log.warning("anomaly: people's decisions could not be read: %s", exc)
            return suite
        self._refreshed[organisation_id] = time.monotonic()
        return suite

    def observe(self, organisation_id: int, batch: EventBatch) -> None:
        """Score ``batch``; a model's failure is logged and counted, and never stops the rules'
        detection of the same events (the batch is not scored by the models then)."""
        try:
            self._pending[organisation_id].extend(self.suite(organisation_id).observe(batch))
        except Exception:
            self.failures += 1
            log.exception("anomaly: the models failed on a batch of %s", batch.path)

    def store(self) -> None:
        """Store the findings gathered (raises the database's error: the caller retries, and
        the batch is not committed before they are stored)."""
        for organisation_id, found in list(self._pending.items()):
            bodies = storable_findings(found)
            self.refused += len(found) - len(bodies)
            if bodies:
                with unit_of_work(self.factory) as session:
                    store.save_findings(
                        session,
                        organisation_id,
                        bodies,
                        actor=ACTOR,
                        exclusion_key=self._key,
                    )
                self.stored += len(bodies)
            del self._pending[organisation_id]

    # ------------------------------------------------------------------ state

    def dump(self) -> dict[int, dict[str, Any]]:
        return {org: suite.state() for org, suite in self.suites.items()}

    def load(self, saved: dict[int, dict[str, Any]]) -> None:
        self.suites = {}
        self._refreshed = {}
        self._approved = {}
        for org, state in saved.items():
            # The models that ran when the state was committed; approvals are read again at
            # the organisation's next batch.
            self._approved[org] = frozenset(state.get("models", {}))
            suite = self.suites[org] = self.make_suite(org)
            try:
                suite.load(state)
            except DetectionError as exc:
                log.warning("anomaly: organisation %d's baselines start again: %s", org, exc)


def storable_findings(findings: list[Finding]) -> list[dict[str, Any]]:
    """``findings`` as the store takes them, each checked alone: one a model's bug made
    unstorable is logged with the reason and left out, so that it neither holds up the others
    nor stops monitoring (the store refuses a whole call that holds one)."""
    bodies = []
    for finding in findings:
        body = finding.to_dict()
        try:
            store.validate(body)
        except store.FindingError as exc:
            # The reason and the model, never the finding's text (it may name a person).
            log.error(
                "anomaly: a %s finding of %s is not stored: %s",
                finding.detector,
                finding.model,
                exc,
            )
            continue
        bodies.append(body)
    return bodies


def retraining_stamps(session: Session, organisation_id: int) -> dict[str, str]:
    """Per default model the organisation's register says was retrained, when (ISO): a live
    model whose baselines predate it starts again (:meth:`LiveAnomaly.suite`)."""
    current = {(card.name, card.version) for card in DEFAULT_MODELS}
    return {
        m.name: m.retrained_at.isoformat()
        for m in store.list_models(session, organisation_id)
        if (m.name, m.version) in current and m.retrained_at is not None
    }


def register_default_models(session: Session, organisation_id: int, actor: str) -> frozenset[str]:
    """Enter in the organisation's register the default models it lacks (unapproved, with
    their purpose, inputs and benchmark figures); the names of those it approved."""
    listed = {(m.name, m.version): m for m in store.list_models(session, organisation_id)}
    for card in DEFAULT_MODELS:
        if (card.name, card.version) not in listed:
            listed[(card.name, card.version)] = store.register_model(
                session,
                organisation_id=organisation_id,
                name=card.name,
                version=card.version,
                purpose=card.purpose,
                inputs=[card.inputs],
                metrics=card.metrics,
                actor=actor,
            )
    return frozenset(
        card.name
        for card in DEFAULT_MODELS
        if listed[(card.name, card.version)].approved_at is not None
    )
