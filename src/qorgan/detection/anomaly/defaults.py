"""The models an organisation runs unless told otherwise: what ``qorgan hunt --anomaly`` and live
monitoring build (:func:`default_suite`), and what the model register lists
(:data:`DEFAULT_MODELS`).

Each model keeps its own state. The session model reads its own tokens (event ids, or the
message with numbers masked) rather than the template miner's ids, so its baselines do not
depend on another model's state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qorgan.detection.anomaly.behaviour import EntityBehaviour
from qorgan.detection.anomaly.frequency import TemplateFrequencyDetector
from qorgan.detection.anomaly.lines import LineRarityDetector
from qorgan.detection.anomaly.rarity import TemplateRarityDetector
from qorgan.detection.anomaly.sessions import SessionDetector
from qorgan.detection.anomaly.suite import AnomalySuite, normalise_identifier

#: Local time of the organisations (Kazakhstan: UTC+5 nationwide since 2024): hours of the
#: week and unusual logon hours are judged in it.
TIMEZONE = "Asia/Almaty"


@dataclass(frozen=True)
class ModelCard:
    """What the model register shows of a model before anyone approves it."""

    name: str
    version: str
    purpose: str
    inputs: str


DEFAULT_MODELS = (
    ModelCard(
        TemplateRarityDetector.model,
        TemplateRarityDetector.version,
        "New and rare log templates per source: a log starts saying something it never said.",
        "text logs (syslog, Apache error and access logs): the message's template",
    ),
    ModelCard(
        TemplateFrequencyDetector.model,
        TemplateFrequencyDetector.version,
        "Bursts and silences of a template's frequency per source, by hour of the week.",
        "text logs: template counts per 10 minutes, event times",
    ),
    ModelCard(
        LineRarityDetector.model,
        LineRarityDetector.version,
        "Lines whose words and level are rare for their source.",
        "text logs: the message's words and its level field",
    ),
    ModelCard(
        EntityBehaviour.model,
        EntityBehaviour.version,
        "Per user, host and address: new logon sources, unusual hours, logons after failures, "
        "first-seen process pairs, services and accounts, unusual data volumes.",
        "normalised security events: logons, process starts, services, account changes, "
        "web responses (user names, addresses, hosts, times, byte counts)",
    ),
    ModelCard(
        SessionDetector.model,
        SessionDetector.version,
        "Improbable sequences of events within a session (Windows logon, SSH session, HDFS block).",
        "event ids and masked messages grouped by logon id, sshd process or block id",
    ),
)


def default_suite(
    organisation: str = "default",
    *,
    identify: Callable[[str], str] = normalise_identifier,
) -> AnomalySuite:
    """A fresh suite of the default models for one organisation."""
    return AnomalySuite(
        [
            TemplateRarityDetector(),
            TemplateFrequencyDetector(timezone=TIMEZONE),
            LineRarityDetector(),
            EntityBehaviour(organisation, tz=TIMEZONE),
            SessionDetector(),
        ],
        identify=identify,
    )
