"""Display names of the console's fixed vocabularies, marked for translation, and the
messages with variable parts (file names, numbers) that the services write in English, read
back by pattern so that pages show them translated (:func:`translate_message`).

``tests/web/test_i18n_labels.py`` keeps each table in step with its vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

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
#: A Sigma rule's status (pySigma's ``SigmaStatus``).
RULE_STATUS_LABELS = {
    "stable": _l("Stable"),
    "test": _l("Test"),
    "experimental": _l("Experimental"),
    "deprecated": _l("Deprecated"),
    "unsupported": _l("Unsupported"),
}
#: Permissions (``core.roles.Permission``), which API tokens carry as scopes.
PERMISSION_LABELS = {
    "alerts:read": _l("Read alerts"),
    "alerts:write": _l("Send alerts"),
    "alerts:triage": _l("Triage alerts"),
    "hunts:run": _l("Run hunts"),
    "hunts:read": _l("Read hunts"),
    "incidents:read": _l("Read incidents"),
    "incidents:write": _l("Work incidents"),
    "incidents:configure": _l("Set incident deadlines and task templates"),
    "incidents:coordinate": _l("Coordinate reported incidents"),
    "sources:read": _l("Read log sources"),
    "sources:configure": _l("Register and change log sources"),
    "audit:read": _l("Read the audit trail"),
    "users:manage": _l("Manage users"),
    "privacy:read": _l("Read the personal-data registry and complaints"),
    "privacy:manage": _l("Register information systems and answer complaints"),
    "privacy:self": _l("See one's own personal-data record"),
    "intel:read": _l("Read threat intelligence"),
    "intel:write": _l("Share threat intelligence and report sightings"),
    "intel:manage": _l("Manage intel collections and feeds"),
}
#: Every action the audit trail records, as the audit page names it.
AUDIT_ACTION_LABELS = {
    "alert.read": _l("Alert viewed"),
    "alert.acknowledge": _l("Alert acknowledged"),
    "alert.false_positive": _l("Alert marked as a false positive"),
    "alert.reopen": _l("Alert reopened"),
    "alert.assign": _l("Alert assigned"),
    "alert.comment": _l("Comment added to an alert"),
    "alerts.ingest": _l("Alerts received"),
    "alerts.export": _l("Alerts exported"),
    "auth.login": _l("Signed in"),
    "auth.logout": _l("Signed out"),
    "auth.failure": _l("Failed sign-in or code check"),
    "auth.refused_locked": _l("Refused: the account is locked"),
    "incident.created": _l("Incident created"),
    "incident.alerts_added": _l("Alerts added to an incident"),
    "incident.status": _l("Incident moved to another phase"),
    "incident.assigned": _l("Incident assigned"),
    "incident.updated": _l("Incident edited"),
    "incident.severity": _l("Incident severity set"),
    "incident.assets": _l("Incident's affected assets changed"),
    "incident.merged_into": _l("Incident merged into another"),
    "incident.merged_from": _l("Incident merged with another"),
    "incident.split_to": _l("Alerts split off an incident"),
    "incident.split_from": _l("Incident split off another"),
    "incident.observable": _l("Observable added to an incident"),
    "incident.template": _l("Task template applied to an incident"),
    "incident.task_added": _l("Task added to an incident"),
    "incident.task": _l("Incident task changed"),
    "incident.note": _l("Note added to an incident"),
    "incident.reported": _l("Incident reported to the national coordinator"),
    "incident.message": _l("Message on a reported incident"),
    "incident.evidence_added": _l("Evidence file added to an incident"),
    "evidence.open": _l("Evidence file opened"),
    "incident.articles": _l("Candidate Criminal Code articles set"),
    "incident.referral": _l("Legal-referral package exported"),
    "incident.deadline": _l("Incident deadline set"),
    "notification.preferences": _l("Notification choices changed"),
    "incident.template_saved": _l("Task template saved"),
    "asset.save": _l("Asset saved"),
    "hunt.create": _l("Hunt started"),
    "hunt.finish": _l("Hunt finished"),
    "source.create": _l("Log source registered"),
    "source.edit": _l("Log source changed"),
    "source.rotate_token": _l("Log source's token replaced"),
    "organisation.create": _l("Organisation created"),
    "organisation.share": _l("Records shared with another organisation"),
    "token.issue": _l("API token issued"),
    "token.revoke": _l("API token revoked"),
    "user.create": _l("User created"),
    "user.role": _l("Role changed"),
    "user.password_change": _l("Password changed"),
    "user.totp_enrol": _l("Second factor set up"),
    "user.totp_reset": _l("Second factor reset"),
    "user.recovery_codes": _l("New recovery codes issued"),
    "user.unlock": _l("Account unlocked"),
    "user.language": _l("Language changed"),
    "privacy.system_register": _l("Information system registered"),
    "privacy.system_token": _l("Information system's token replaced"),
    "privacy.consent_give": _l("Consent recorded"),
    "privacy.consent_withdraw": _l("Consent withdrawn"),
    "privacy.consent_fulfil": _l("Consent ended: purpose achieved"),
    "privacy.deletion_confirmed": _l("Deletion of personal data confirmed"),
    "privacy.subject_read": _l("Citizen's record read by staff"),
    "privacy.retention_purge": _l("Personal-data records deleted at the end of their term"),
    "privacy.complaint_file": _l("Complaint filed by a citizen"),
    "privacy.objection_file": _l("Objection to automated processing filed"),
    "privacy.complaint_answer": _l("Complaint answered"),
    "privacy.leak_create": _l("Personal-data leak report started"),
    "privacy.leak_subjects": _l("Affected subjects added to a leak report"),
    "privacy.leak_submit": _l("Personal-data leak report submitted"),
    "privacy.leak_incident": _l("Leak report joined to an incident"),
    "privacy.leak_report": _l("Leak report to the authorised body produced"),
    "intel.collection_create": _l("Intel collection created"),
    "intel.objects_add": _l("Intel objects added"),
    "intel.objects_delete": _l("Intel object deleted"),
    "intel.objects_serve": _l("Intel objects served"),
    "intel.manifest_serve": _l("Intel manifest served"),
    "intel.versions_serve": _l("Intel object versions served"),
    "intel.objects_view": _l("Intel objects viewed"),
    "intel.incident_share": _l("Incident shared with the constituency"),
    "intel.sighting_report": _l("Sighting reported"),
    "intel.feed_create": _l("Intel feed added"),
    "intel.feed_poll": _l("Intel feed polled"),
    "finding.created": _l("AI model's finding recorded"),
    "finding.confirmed": _l("AI model's finding confirmed by a person"),
    "finding.rejected": _l("AI model's finding rejected by a person"),
    "finding.excluded": _l("Objection to AI processing recorded"),
    "model.registered": _l("AI model registered"),
    "model.approved": _l("AI model approved"),
    "model.retrained": _l("AI model retraining recorded"),
}
#: The same actions in an alert's history, where the alert goes without saying.
HISTORY_LABELS = {
    "alert.read": _l("Viewed the alert"),
    "alert.acknowledge": _l("Marked as acknowledged"),
    "alert.false_positive": _l("Marked as a false positive"),
    "alert.reopen": _l("Reopened"),
    "alert.assign": _l("Assigned"),
    "alert.comment": _l("Commented"),
}
#: What an audit entry is about (its ``target_type``).
TARGET_LABELS = {
    "alert": _l("alert"),
    "api_token": _l("API token"),
    "incident": _l("incident"),
    "asset": _l("asset"),
    "evidence": _l("evidence file"),
    "deadline": _l("deadline"),
    "task_template": _l("task template"),
    "hunt": _l("hunt"),
    "log_source": _l("log source"),
    "organisation": _l("organisation"),
    "user": _l("user"),
    "privacy_system": _l("information system"),
    "privacy_consent": _l("consent"),
    "privacy_subject": _l("data subject"),
    "privacy_complaint": _l("complaint"),
    "privacy_leak": _l("leak report"),
    "intel_collection": _l("intel collection"),
    "intel_feed": _l("intel feed"),
    "finding": _l("AI model's finding"),
    "exclusion": _l("objection to AI processing"),
    "model": _l("AI model"),
}
#: Who acted, when it was not a user: the hunts' background process, a sign-in with an
#: unknown e-mail address, the command line, ``qorgan demo``.
ACTOR_LABELS = {
    "system": _l("System"),
    "anonymous": _l("Unknown account"),
    "cli": _l("Command line"),
    "system:demo": _l("Demo set-up"),
    "privacy": _l("Personal-data service"),
    "citizen": _l("A citizen"),
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
#: An incident's phases (``incidents.lifecycle.Status``).
INCIDENT_STATUS_LABELS = {
    "new": _l("New"),
    "triage": _l("Triage"),
    "containment": _l("Containment"),
    "eradication": _l("Eradication"),
    "recovery": _l("Recovery"),
    "review": _l("Post-incident review"),
    "closed": _l("Closed"),
}
RESOLUTION_LABELS = {
    "true-positive-impact": _l("True positive, with impact"),
    "true-positive-no-impact": _l("True positive, without impact"),
    "false-positive": _l("False positive"),
    "duplicate": _l("Duplicate"),
}
SEVERITY_LABELS = {
    "low": _l("Low"),
    "medium": _l("Medium"),
    "high": _l("High"),
    "critical": _l("Critical"),
}
TASK_STATUS_LABELS = {
    "open": _l("To do"),
    "done": _l("Done"),
    "skipped": _l("Skipped"),
}
#: An incident's clocks (``incidents.clocks``) and their states.
CLOCK_LABELS = {
    "acknowledge": _l("Time to acknowledge"),
    "contain": _l("Time to contain"),
    "close": _l("Time to close"),
    "breach_report": _l("Breach report to the authorised body"),
}
CLOCK_STATE_LABELS = {
    "met": _l("Met"),
    "met_late": _l("Met late"),
    "running": _l("Running"),
    "soon": _l("Due soon"),
    "overdue": _l("Overdue"),
    "none": _l("No deadline"),
}
OBSERVABLE_LABELS = {
    "ip": _l("IP address"),
    "domain": _l("Domain"),
    "url": _l("URL"),
    "hash": _l("File hash"),
    "account": _l("Account"),
    "email": _l("E-mail address"),
    "file": _l("File name"),
}
#: Entries of an incident's timeline (``incidents.service.EVENT_KINDS``, and alerts).
TIMELINE_LABELS = {
    "alert": _l("Alert"),
    "created": _l("Incident created"),
    "alerts_added": _l("Alerts added"),
    "status": _l("Moved to another phase"),
    "assigned": _l("Assigned"),
    "updated": _l("Edited"),
    "severity": _l("Severity set"),
    "assets": _l("Affected assets changed"),
    "merged_into": _l("Merged into another incident"),
    "merged_from": _l("Another incident merged into this one"),
    "split_to": _l("Alerts split off to a new incident"),
    "split_from": _l("Split off another incident"),
    "observable": _l("Observable added"),
    "template": _l("Task template applied"),
    "task_added": _l("Task added"),
    "task": _l("Task changed"),
    "note": _l("Note added"),
    "reported": _l("Reported to the national coordinator"),
    "message": _l("Message in the thread with the coordinator"),
    "evidence_added": _l("Evidence file added"),
    "articles": _l("Candidate Criminal Code articles set"),
    "referral": _l("Legal-referral package exported"),
}
MESSAGE_KIND_LABELS = {
    "question": _l("Question"),
    "recommendation": _l("Recommendation"),
    "message": _l("Message"),
}
#: Kinds of notification (``incidents.notifications.KINDS``) and their channels.
NOTIFICATION_LABELS = {
    "assigned": _l("Incident assigned to you"),
    "due_soon": _l("Deadline due soon"),
    "overdue": _l("Deadline passed"),
    "reported": _l("Incident reported to your organisation"),
    "answered": _l("Answer from the national coordinator"),
}
CHANNEL_LABELS = {
    "console": _l("In the console"),
    "email": _l("By e-mail"),
}
#: Where a person's decision on an AI model's finding has got to.
FINDING_STATUS_LABELS = {
    "pending": _l("Awaits a person's decision"),
    "confirmed": _l("Confirmed"),
    "rejected": _l("Rejected"),
}
#: The kinds of anomaly detector (a finding's ``detector``).
DETECTOR_LABELS = {
    "template.new": _l("New log template"),
    "template.rarity": _l("Rare log template"),
    "template.frequency": _l("Change in a template's frequency"),
    "template.burst": _l("Burst of a log template"),
    "template.silent": _l("Log template fell silent"),
    "line.rare": _l("Rare log line"),
    "entity.logon": _l("Unusual logon"),
    "entity.account": _l("Unusual account change"),
    "entity.process_pair": _l("Never-seen parent and child process"),
    "entity.service": _l("New service on a host"),
    "entity.volume": _l("Unusual data volume"),
    "sequence": _l("Unusual sequence in a session"),
}
#: The features that explain a score (a contribution's ``feature``); a feature not listed is
#: shown by its key (:func:`feature_label`).
FEATURE_LABELS = {
    "template.rarity": _l("How rare the template is"),
    "template.frequency": _l("The template's frequency"),
    "template.burst": _l("Lines of the template in the window"),
    "template.silent": _l("Lines of the template in the window"),
    "frequency.overall": _l("Frequency compared with the usual"),
    "frequency.hour_of_week": _l("Frequency compared with this hour of the week"),
    "logon.new_source_ip": _l("Logon from a never-seen address"),
    "logon.unusual_hour": _l("Logon at an unusual hour"),
    "logon.after_failures": _l("Failed logons before it"),
    "process.new_pair": _l("Never-seen parent and child process"),
    "service.new": _l("New service"),
    "service.new_on_host": _l("Service new on this host"),
    "service.new_in_org": _l("Service new in the organisation"),
    "account.new_user": _l("New account"),
    "account.admin_group_add": _l("Account added to an administrators' group"),
    "volume.response_bytes": _l("Bytes in one response"),
    "volume.window_bytes": _l("Bytes in the window"),
    "word.others": _l("Other words of the line"),
    "sequence.transition": _l("Step in the session"),
    "sequence.unseen_token": _l("Event never seen in training"),
    "sequence.count": _l("Times the event occurs"),
}
#: Features named by a kind and what they are about: ``word.<word>`` and ``field.<name>`` (a
#: line's rarity); ``<feature>: <subject>`` (a sequence's step, one of several rare templates).
_SUBJECT_KINDS = {"word": _l("Word"), "field": _l("Field")}


def feature_label(key: str, gettext: Callable[[str], str] = str) -> str:
    """A feature's (or detector kind's) display name in ``gettext``'s language: a known key's
    name; a known kind with its subject (``sequence.transition: a -> b`` is "Step in the session:
    a -> b", ``word.passwd`` is "Word passwd"); the key itself when the console does not know it
    (a newer detector's feature)."""
    label = FEATURE_LABELS.get(key) or DETECTOR_LABELS.get(key)
    if label is not None:
        return gettext(label)
    kind, colon, subject = key.partition(": ")
    if colon and kind in FEATURE_LABELS:
        return f"{gettext(FEATURE_LABELS[kind])}: {subject}"
    kind, dot, subject = key.partition(".")
    if dot and subject and kind in _SUBJECT_KINDS:
        return f"{gettext(_SUBJECT_KINDS[kind])} {subject}"
    return key


def model_value(value: object) -> str:
    """A finding's typical or actual value as the pages show it: a fraction to three
    significant digits (``0.9999984118243674`` is ``1``, ``9.098e-10`` is ``9.1e-10``), a
    large one whole with its thousands grouped (``15728640.0`` is ``15,728,640``), a missing
    one as "—", any other as it is."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def short_path(value: object, keep: int = 40) -> str:
    """A value as a list's narrow column shows it: a file path longer than ``keep`` characters
    as ``…/`` and its last part (``…/web_access_log.txt``; the page puts the whole in the
    element's title), anything else as it is."""
    text = str(value)
    cut = max(text.rfind("/"), text.rfind("\\"))
    if len(text) <= keep or cut <= 0 or cut == len(text) - 1:
        return text
    return "…" + text[cut:]


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

#: Fixed messages of the pipeline, the alert store and the hunt folder that pages show.
PAGE_MESSAGES = frozenset(
    {
        _l("interrupted by a restart"),
        _l("the hunt ran out of memory"),
        _l("a symbolic link out of the folder hunted; not read"),
        _l("a symbolic link to a folder; not followed"),
        _l("no such file or directory"),
        _l("type something to search for"),
        _l("a search cannot contain NUL or unpaired surrogate characters"),
        _l("this search is too long to save"),
        _l("alerts can only be assigned to users of the same organisation"),
        _l("choose scopes your role holds and a listed lifetime"),
        _l("choose a role"),
        _l("unsupported language"),
        # Refusals of a decision on an AI finding, or of an objection (incidents.findings).
        _l("a decision needs a reason"),
        _l("a reason has at most 2000 characters"),
        _l("a reason must not contain NUL characters"),
        _l("a reason must not contain unpaired surrogate characters"),
        _l("this finding was already decided"),
        _l("an objection names at least one identifier"),
        _l("an objection names at most 100 identifiers"),
        _l("an objection needs the request's reference"),
        _l("a request reference has at most 200 characters"),
        _l("an identifier is not storable text"),
    }
)


@dataclass(frozen=True, slots=True)
class MessagePattern:
    """A message the code writes with variable parts: ``match`` reads them, ``message`` (marked
    for translation, English as the page shows it) puts them back as ``%(name)s``. Parts named
    in ``nested`` are messages themselves (a quarantine reason) and are translated in turn."""

    match: re.Pattern[str]
    message: str
    nested: tuple[str, ...] = ()


def _pattern(match: str, message: str, *nested: str) -> MessagePattern:
    return MessagePattern(re.compile(match, re.DOTALL), message, nested)


_SIZE = r"(?P<size>\d+ (?:MiB|KiB|bytes))"
#: Tried in order; the first whose ``match`` takes the whole message wins.
MESSAGE_PATTERNS = (
    # Why a hunt failed (qorgan.pipeline.hunts).
    _pattern(
        r"the hunt exceeded its memory limit of (?P<limit>\d+) MiB",
        _l("the hunt exceeded its memory limit of %(limit)s MiB"),
    ),
    _pattern(
        r"the hunt's process was stopped by (?P<signal>[\w ]+) "
        r"\(it may have exceeded its memory limit of (?P<limit>\d+) MiB\)",
        _l(
            "the hunt's process was stopped by %(signal)s "
            "(it may have exceeded its memory limit of %(limit)s MiB)"
        ),
    ),
    _pattern(
        r"the hunt's process failed \(exit code (?P<code>-?\d+)\)",
        _l("the hunt's process failed (exit code %(code)s)"),
    ),
    _pattern(
        r"the hunt could not start: (?P<reason>.*)", _l("the hunt could not start: %(reason)s")
    ),
    _pattern(
        r"no event could be read \((?P<count>\d+) quarantined; see the quarantine\)",
        _l("no event could be read (%(count)s quarantined)"),
    ),
    _pattern(
        r"no event could be read \((?P<count>\d+) quarantined; (?P<file>.+?): (?P<reason>.+)\)",
        _l("no event could be read (%(count)s quarantined; %(file)s: %(reason)s)"),
        "reason",
    ),
    # Quarantine reasons (qorgan.telemetry): the format's or the reader's name, then why.
    _pattern(
        r"format: format not recognised; force one with --input-format",
        _l("the format of the file is not recognised"),
    ),
    _pattern(r"io: cannot open: (?P<reason>.*)", _l("cannot open the file: %(reason)s")),
    _pattern(r"io: cannot read: (?P<reason>.*)", _l("cannot read the file: %(reason)s")),
    _pattern(r"io: read stopped: (?P<reason>.*)", _l("reading stopped: %(reason)s")),
    _pattern(r"io: (?P<reason>.*)", "%(reason)s", "reason"),
    _pattern(
        rf"gzip: inflates to more than {_SIZE}; the rest of the file is not read",
        _l("the gzip file inflates to more than %(size)s; the rest of it is not read"),
    ),
    _pattern(
        r"gzip: inflates more than (?P<ratio>[\d.e+]+) times its compressed size "
        r"\(a decompression bomb\?\); the rest of the file is not read",
        _l(
            "the gzip file inflates more than %(ratio)s times its compressed size "
            "(a decompression bomb?); the rest of it is not read"
        ),
    ),
    _pattern(
        rf"(?P<format>\w+): line longer than {_SIZE}",
        _l("%(format)s: a line longer than %(size)s"),
    ),
    _pattern(
        rf"json: document (?P<number>\d+) longer than {_SIZE}(?:, and cut short)?",
        _l("JSON: document %(number)s is longer than %(size)s"),
    ),
    _pattern(r"syslog: no timestamp/header", _l("syslog: a line without a timestamp or header")),
    _pattern(
        r"accesslog: not a common/combined log line",
        _l("web access log: not a line of the common or combined format"),
    ),
    _pattern(
        r"apache_error: not an error log line", _l("Apache error log: not a line of the format")
    ),
    _pattern(r"cef: no CEF header", _l("CEF: a line without a CEF header")),
    _pattern(r"cef: malformed CEF header", _l("CEF: a malformed CEF header")),
    _pattern(
        r"evtx: not a readable EVTX file: (?P<reason>.*)",
        _l("EVTX: not a readable EVTX file: %(reason)s"),
    ),
    # The hunt folder (qorgan.web.files) and the hunt service.
    _pattern(
        r"(?P<path>.+) is longer than (?P<count>[\d,]+) characters",
        _l("%(path)s is longer than %(count)s characters"),
    ),
    _pattern(
        r"(?P<path>.+) contains a control character", _l("%(path)s contains a control character")
    ),
    _pattern(r"(?P<path>.+) is outside the hunt folder", _l("%(path)s is outside the hunt folder")),
    _pattern(r"(?P<path>.+) is not a usable path", _l("%(path)s is not a usable path")),
    _pattern(
        r"(?P<path>.+) does not exist in the hunt folder",
        _l("%(path)s does not exist in the hunt folder"),
    ),
    _pattern(r"the upload exceeds (?P<size>\d+) MiB", _l("the upload exceeds %(size)s MiB")),
    # The inbox's search, dates, saved searches and bulk triage (qorgan.incidents, web.filters).
    _pattern(
        r"a search has at most (?P<count>[\d,]+) characters",
        _l("a search has at most %(count)s characters"),
    ),
    _pattern(
        r"a search has at most (?P<count>[\d,]+) terms", _l("a search has at most %(count)s terms")
    ),
    _pattern(
        r"at least one search term needs (?P<count>\d+) characters or more",
        _l("at least one search term needs %(count)s characters or more"),
    ),
    _pattern(
        r"not a date \(YYYY-MM-DD\) or a date-time with offset, or out of range: (?P<value>.*)",
        _l("not a date (YYYY-MM-DD) or a date-time with offset, or out of range: %(value)s"),
    ),
    _pattern(
        r"a date-time needs its offset \(Z or \+05:00\): (?P<value>.*)",
        _l("a date-time needs its offset (Z or +05:00): %(value)s"),
    ),
    _pattern(
        r"a saved search needs a name of 1 to (?P<count>[\d,]+) characters",
        _l("a saved search needs a name of 1 to %(count)s characters"),
    ),
    _pattern(
        r"at most (?P<count>[\d,]+) searches can be saved; delete one first",
        _l("at most %(count)s searches can be saved; delete one first"),
    ),
    _pattern(
        r"at most (?P<count>[\d,]+) alerts can be changed at once",
        _l("at most %(count)s alerts can be changed at once"),
    ),
    _pattern(
        r"more than (?P<count>[\d,]+) alerts match; narrow the filter to change them at once",
        _l("more than %(count)s alerts match; narrow the filter to change them at once"),
    ),
    # A service's error about a file or a record: "<where>: <message>".
    _pattern(r"(?P<where>[^:]+): (?P<reason>.+)", "%(where)s: %(reason)s", "reason"),
)


def translate_message(message: str, gettext: Callable[[str], str]) -> str | None:
    """``message`` in the page's language when it is a marked message or matches one of
    :data:`MESSAGE_PATTERNS`; None when it is neither (it is then shown as written)."""
    if not message:
        return None
    translated = gettext(message)
    if translated != message or message in PAGE_MESSAGES or message in SERVICE_MESSAGES:
        return translated
    for pattern in MESSAGE_PATTERNS:
        found = pattern.match.fullmatch(message)
        if found is None:
            continue
        values = found.groupdict()
        known = True
        for name in pattern.nested:
            nested = translate_message(values[name], gettext)
            if nested is None:
                known = False
            else:
                values[name] = nested
        if not known and pattern.message.startswith("%("):
            continue  # only a frame ("<where>: <why>") around a message we do not know
        return gettext(pattern.message) % values
    return None
