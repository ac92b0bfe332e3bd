"""A model that fails on a live batch is logged and counted, and the next batches are scored
again (the rules' detection of the batch is not the models' business: see
``test_collector.py::test_live_anomaly_models_run_once_approved_propose_findings_and_heed_an_objection``
for the models in the running collector)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from qorgan.core.accounts import create_organisation
from qorgan.core.db import unit_of_work
from qorgan.core.models import OrganisationKind
from qorgan.detection.anomaly.behaviour import EntityBehaviour
from qorgan.detection.anomaly.findings import Finding
from qorgan.detection.anomaly.suite import AnomalySuite
from qorgan.pipeline.anomaly import LiveAnomaly
from qorgan.telemetry.batch import EventBatch


class FailsOnce(EntityBehaviour):
    """The real entity model, but its first batch raises, as a model's bug would."""

    failed = False

    def observe(self, batch: EventBatch) -> list[Finding]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a model's bug")
        return super().observe(batch)


def test_a_failing_model_is_counted_and_the_next_batch_is_scored(
    factory: sessionmaker[Session],
) -> None:
    with unit_of_work(factory) as session:
        org = create_organisation(
            session=session, actor="t", name="Astana SOC", kind=OrganisationKind.soc
        ).id
    model = FailsOnce(str(org))
    live = LiveAnomaly(factory, lambda *_a, **_k: AnomalySuite([model]), b"k" * 32)
    batch = EventBatch("auth.log", "syslog", {"product": "linux", "service": "sshd"})
    batch.append(
        {"event_type": "logon", "user": "alice", "src_ip": "10.0.0.5", "message": "Accepted"},
        1,
        "2026-12-01T03:00:00Z",
        "web1",
    )
    live.observe(org, batch)  # raises inside: logged, counted, not raised
    assert live.failures == 1
    live.observe(org, batch)
    assert live.failures == 1 and model.failed
    live.store()  # nothing pending from the failed batch: stores without error
