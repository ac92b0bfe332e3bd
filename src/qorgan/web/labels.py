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
SORT_LABELS = {
    "-time": _l("Newest first"),
    "time": _l("Oldest first"),
    "-received": _l("Newest received first"),
    "received": _l("Oldest received first"),
    "-level": _l("Highest level first"),
    "level": _l("Lowest level first"),
}
GROUP_LABELS = {
    "rule": _l("Rule"),
    "host": _l("Host"),
    "rule_host": _l("Rule and host"),
    "user": _l("User"),
    "address": _l("Source address"),
}
HUNT_STATUS_LABELS = {
    "queued": _l("Queued"),
    "running": _l("Running"),
    "done": _l("Done"),
    "failed": _l("Failed"),
}

#: Messages the account service and the password policy give, shown on the account and users
#: pages; ``translate_error`` translates each part of a "; "-joined message.
#: ``tests/web/test_i18n_errors.py`` keeps this list in step with the service.
SERVICE_MESSAGES = frozenset(
    {
        _l("an e-mail address is required"),
        _l("a user with this e-mail address exists"),
        _l("the current password is wrong"),
        _l("the code does not match: check the authenticator app's clock"),
        _l("the second factor is not set up"),
        _l("administrators cannot take their own administrator role away"),
        _l("no such user in your organisation"),
        _l("at least 8 characters are required"),
        _l("at most 256 characters are allowed"),
        _l("this password is in a list of common or breached passwords"),
        _l("this password is too easy to guess"),
        _l("one of the last 5 passwords may not be reused"),
    }
)
