"""What each role may do: permissions are ``resource:action`` strings, the same strings that
API tokens carry as scopes, so a token never does more than its user's role allows.

Partners (banks, telecoms, private SOCs) read and write threat intelligence and nothing else;
data-protection officers keep their organisation's registry of information systems and answer
complaints; citizens see their own record in the privacy service's portal, nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from qorgan.core import security
from qorgan.core.models import Role


class Permission(StrEnum):
    alerts_read = "alerts:read"
    alerts_write = "alerts:write"  # send alerts (a hunt's output) to the console
    alerts_triage = "alerts:triage"  # acknowledge, assign, mark false positive
    hunts_run = "hunts:run"
    hunts_read = "hunts:read"
    incidents_read = "incidents:read"
    incidents_write = "incidents:write"  # create, work and close the organisation's incidents
    incidents_configure = "incidents:configure"  # deadlines, task templates
    incidents_coordinate = "incidents:coordinate"  # national coordinator: reports received
    sources_read = "sources:read"  # live log sources and their figures
    sources_configure = "sources:configure"  # register and change sources, rotate tokens
    audit_read = "audit:read"
    privacy_read = "privacy:read"  # the registry of information systems, the access log
    privacy_manage = "privacy:manage"  # register systems, rotate their tokens
    privacy_self = "privacy:self"  # a citizen's own record: access log, consents, complaints
    users_manage = "users:manage"
    intel_read = "intel:read"  # TAXII collections and the intel pages, as TLP allows
    intel_write = "intel:write"  # add objects and sightings to collections one may write
    intel_manage = "intel:manage"  # collections, their grants and redaction policies, feeds


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.administrator: frozenset(Permission),
    Role.soc_analyst: frozenset(
        {
            Permission.alerts_read,
            Permission.alerts_write,
            Permission.alerts_triage,
            Permission.hunts_run,
            Permission.hunts_read,
            Permission.incidents_read,
            Permission.incidents_write,
            Permission.sources_read,
            Permission.intel_read,
            Permission.intel_write,
        }
    ),
    Role.cert_coordinator: frozenset(
        {
            Permission.alerts_read,
            Permission.alerts_triage,
            Permission.hunts_read,
            Permission.incidents_read,
            Permission.incidents_write,
            Permission.incidents_configure,
            Permission.incidents_coordinate,
            Permission.sources_read,
            Permission.sources_configure,
            Permission.intel_read,
            Permission.intel_write,
            Permission.intel_manage,
        }
    ),
    Role.auditor: frozenset(
        {
            Permission.alerts_read,
            Permission.hunts_read,
            Permission.audit_read,
            Permission.incidents_read,
            Permission.sources_read,
            Permission.intel_read,
        }
    ),
    Role.partner: frozenset({Permission.intel_read, Permission.intel_write}),
    Role.dpo: frozenset({Permission.privacy_read, Permission.privacy_manage}),
    Role.citizen: frozenset({Permission.privacy_self}),
}


def allows(role: Role, needed: Permission, scopes: Iterable[str] | None = None) -> bool:
    """Whether ``role`` (acting through a token with ``scopes``, if given) may do ``needed``."""
    if needed not in ROLE_PERMISSIONS[role]:
        return False
    return scopes is None or security.token_allows(scopes, needed)
