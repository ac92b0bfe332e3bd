"""The REST API under ``/api/v1``: thin routers over the domain services."""

from __future__ import annotations

from fastapi import APIRouter

from qorgan.web.api import (
    alert_detail,
    alerts,
    audit,
    hunts,
    incident_settings,
    incident_stats,
    incidents,
    ingest,
    me,
    notifications,
    privacy,
    privacy_leaks,
    sources,
)

router = APIRouter()
for _module in (
    me,
    alerts,
    alert_detail,
    hunts,
    audit,
    incident_settings,
    incident_stats,  # /incidents/stats before /incidents/{incident_id}
    incidents,
    notifications,
    sources,
    ingest,
    privacy,
    privacy_leaks,
):
    router.include_router(_module.router)
