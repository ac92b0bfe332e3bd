"""Display names of the console's fixed vocabularies, marked for translation."""

from __future__ import annotations

from qorgan.web.i18n import _l

ROLE_LABELS = {
    "administrator": _l("Administrator"),
    "soc_analyst": _l("SOC analyst"),
    "cert_coordinator": _l("CERT coordinator"),
    "partner": _l("Partner"),
    "dpo": _l("Data-protection officer"),
    "auditor": _l("Auditor"),
    "citizen": _l("Citizen"),
}
LEVEL_LABELS = {
    "informational": _l("Informational"),
    "low": _l("Low"),
    "medium": _l("Medium"),
    "high": _l("High"),
    "critical": _l("Critical"),
}
STATUS_LABELS = {
    "new": _l("New"),
    "acknowledged": _l("Acknowledged"),
    "false_positive": _l("False positive"),
}
HUNT_STATUS_LABELS = {
    "queued": _l("Queued"),
    "running": _l("Running"),
    "done": _l("Done"),
    "failed": _l("Failed"),
}
