"""The models an organisation runs unless told otherwise: what ``qorgan hunt --anomaly`` and live
monitoring build (:func:`default_suite`), and what the model register lists
(:data:`DEFAULT_MODELS`).

Each model keeps its own state, but the template models share one template miner
(:class:`~qorgan.detection.anomaly.eventkeys.SharedMiner`): each line is mined once, and both
count by the same template ids. Each still saves the miner in its state, so either loads
alone; loading the same miner state twice is harmless. The session model reads its own tokens
(event ids, or the message with numbers masked) rather than the template miner's ids, so its
baselines do not depend on another model's state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from qorgan.core.identifiers import normalise_identifier
from qorgan.detection.anomaly.behaviour import EntityBehaviour
from qorgan.detection.anomaly.eventkeys import SharedMiner
from qorgan.detection.anomaly.frequency import TemplateFrequencyDetector
from qorgan.detection.anomaly.lines import LineRarityDetector
from qorgan.detection.anomaly.rarity import TemplateRarityDetector
from qorgan.detection.anomaly.sessions import SessionDetector
from qorgan.detection.anomaly.suite import AnomalySuite

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
    #: Figures measured on the public benchmarks (docs/anomaly.md says how to rerun them).
    metrics: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_MODELS = (
    ModelCard(
        TemplateRarityDetector.model,
        TemplateRarityDetector.version,
        "New and rare log templates per source: a log starts saying something it never said.",
        "text logs (syslog, Apache error and access logs): the message's template",
        {
            "loghub2k_mean_grouping_accuracy": 0.988,
            "loghub2k_mean_parsing_accuracy": 0.807,
            "findings_on_untouched_logs": "Linux_2k 2, OpenSSH_2k 2 (second halves)",
        },
    ),
    ModelCard(
        TemplateFrequencyDetector.model,
        TemplateFrequencyDetector.version,
        "Bursts and silences of a template's frequency per source, by hour of the week.",
        "text logs: template counts per 10 minutes, event times",
        {"findings_on_untouched_logs": "Linux_2k 10, OpenSSH_2k 0 (second halves)"},
    ),
    ModelCard(
        LineRarityDetector.model,
        LineRarityDetector.version,
        "Lines whose words and level are rare for their source: by construction about the "
        "rarest 2% of a source's lines, so it suits application logs reviewed in hunts (BGL) "
        "better than live monitoring, where it proposes about one line in fifty.",
        "text logs: the message's words and its level field",
        {"bgl_2k_f1": 0.579, "bgl_2k_precision": 0.411, "bgl_2k_recall": 0.979},
    ),
    ModelCard(
        EntityBehaviour.model,
        EntityBehaviour.version,
        "Per user, host and address: new logon sources, unusual hours, logons after failures, "
        "first-seen process pairs, services and accounts, unusual data volumes.",
        "normalised security events: logons, process starts, services, account changes, "
        "web responses (user names, addresses, hosts, times, byte counts)",
        {
            "injected_attacks_found": "4 of 4, each by the right feature",
            "findings_on_untouched_logs": "OpenSSH 0, Linux 1, web 0, auditd 0",
        },
    ),
    ModelCard(
        SessionDetector.model,
        SessionDetector.version,
        "Improbable sequences of events within a session (Windows logon, SSH session, HDFS block).",
        "event ids and masked messages grouped by logon id, sshd process or block id",
        {"hdfs_recall": 0.9998, "hdfs_false_positive_rate": 0.0041},
    ),
)


def default_suite(
    organisation: str = "default",
    *,
    identify: Callable[[str], str] = normalise_identifier,
    models: Collection[str] | None = None,
) -> AnomalySuite:
    """A fresh suite of the default models for one organisation (only those named in
    ``models``, when given: live monitoring runs the models the organisation approved). The
    two template detectors share one miner, so each line is mined once."""
    miner = SharedMiner()
    detectors = [
        TemplateRarityDetector(miner=miner),
        TemplateFrequencyDetector(miner=miner, timezone=TIMEZONE),
        LineRarityDetector(),
        EntityBehaviour(organisation, tz=TIMEZONE),
        SessionDetector(),
    ]
    if models is not None:
        detectors = [d for d in detectors if d.model in models]
    return AnomalySuite(detectors, identify=identify)
