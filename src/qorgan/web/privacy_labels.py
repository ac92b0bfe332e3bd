"""The personal-data service's words as the citizen portal and the DPO's pages say them: its
codes (outcomes, reasons, legal bases, data categories, statuses) as plain language, marked
for translation, and its refusals (an IIN that cannot be right, a consent the law keeps, a
complaint missing a field) read back by pattern and translated with their variable parts.

``tests/web/test_citizen_portal.py`` keeps each table in step with the service's vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from qorgan.web.i18n import _l

#: The result of an entry in the access log.
OUTCOME_LABELS = {
    "allow": _l("Allowed"),
    "deny": _l("Refused"),
    "reported": _l("Read"),
}
#: Why (``decisions.REASONS``), said to the person whose data it is.
REASON_LABELS = {
    "consent": _l("Your consent covers this purpose and these data."),
    "legal_basis": _l("The law allows this access without your consent, on the basis named."),
    "no_consent": _l("You have not consented to this system using these data for this purpose."),
    "consent_withdrawn": _l("You withdrew your consent."),
    "consent_expired": _l("Your consent has ended."),
    "purpose_not_registered": _l("This purpose is not registered for the system."),
    "basis_not_registered": _l("This legal basis is not registered for the system."),
    "category_not_registered": _l("The system is not registered to hold these kinds of data."),
    "reported": _l("The system reported that it read your data."),
    "staff_read": _l("A member of the organisation's staff read your record in this service."),
}
LEGAL_BASIS_LABELS = {
    "consent": _l("Your consent"),
    "legal_obligation": _l("A duty set by law"),
    "contract": _l("A contract you are party to"),
    "state_service": _l("A public service you asked for"),
    "law_enforcement": _l("Courts, investigations or enforcement"),
    "vital_interests": _l("Protecting your life or health"),
    "public_data": _l("Data you made public"),
}
#: The same, as the registry names them to its staff.
REGISTRY_BASIS_LABELS = {
    "consent": _l("Consent"),
    "legal_obligation": _l("Legal obligation"),
    "contract": _l("Contract"),
    "state_service": _l("Public service"),
    "law_enforcement": _l("Law enforcement"),
    "vital_interests": _l("Vital interests"),
    "public_data": _l("Data made public"),
}
CATEGORY_LABELS = {
    "general": _l("General personal data"),
    "restricted": _l("Restricted-access data"),
    "biometric": _l("Biometric data"),
    "special": _l("Special categories (health, beliefs, criminal record)"),
}
CONSENT_STATUS_LABELS = {
    "active": _l("In force"),
    "withdrawn": _l("Withdrawn"),
    "expired": _l("Expired"),
    "fulfilled": _l("Purpose achieved"),
}
COMPLAINT_STATUS_LABELS = {
    "open": _l("Awaiting an answer"),
    "answered": _l("Answered"),
}
COMPLAINT_KIND_LABELS = {
    "complaint": _l("Complaint"),
    "objection": _l("Objection to automated processing"),
}
#: The fields the complaint service names in its refusals, as the forms label them.
FIELD_LABELS = {
    "your name": _l("Your name"),
    "your contacts": _l("Your contacts"),
    "a description": _l("What happened"),
    "the evidence": _l("Evidence"),
    "the answer": _l("Answer"),
}
#: A staff read's purpose (``routes/privacy_pages.py`` writes it), said to the citizen.
STAFF_PURPOSES = (
    (re.compile(r"complaint (?P<number>\d+)"), _l("Reading your complaint no. %(number)s")),
    (re.compile(r"objection (?P<number>\d+)"), _l("Reading your objection no. %(number)s")),
)


def _patterns(*pairs: tuple[str, str]) -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(pattern, re.DOTALL), message) for pattern, message in pairs)


#: The IIN's refusals (qorgan.core.identifiers): the number itself is never repeated.
IIN_REFUSALS = _patterns(
    (r"an IIN is text of 12 digits", _l("An IIN has 12 digits.")),
    (r"an IIN has only the digits 0-9", _l("An IIN has only the digits 0-9.")),
    (r"an IIN has 12 digits, not (?P<count>\d+)", _l("An IIN has 12 digits, not %(count)s.")),
    (
        r"the IIN's century digit must be 1-6",
        _l("The seventh digit of an IIN (the century of birth) is 1 to 6."),
    ),
    (
        r"the IIN's date of birth is not a real date",
        _l("The first six digits of the IIN are not a real date of birth."),
    ),
    (
        r"the IIN's date of birth is in the future",
        _l("The first six digits of the IIN are a date of birth in the future."),
    ),
    (
        r"the IIN's check digit does not match",
        _l("The last digit of the IIN (its check digit) does not match: look for a typo."),
    ),
)
#: Refusals of the privacy services, tried in order: the first whose pattern takes the whole
#: message gives the translation; ``field`` is translated through :data:`FIELD_LABELS`.
REFUSALS = IIN_REFUSALS + _patterns(
    # Consents (qorgan.privacy.consents).
    (
        r"this consent cannot be withdrawn: (?P<reason>.+)",
        _l("The law does not allow withdrawing this consent: %(reason)s"),
    ),
    (r"this consent is already withdrawn", _l("This consent is already withdrawn.")),
    (r"this consent is already expired", _l("This consent has already expired.")),
    (r"this consent is already fulfilled", _l("This consent's purpose is already achieved.")),
    (r"no such consent", _l("No such consent.")),
    (
        r"the consent is still active: nothing is to be deleted yet",
        _l("The consent is still in force: nothing is to be deleted yet."),
    ),
    (r"the deletion was already confirmed", _l("The deletion was already confirmed.")),
    # Complaints (qorgan.privacy.complaints).
    (
        r"choose an organisation that holds personal data",
        _l("Choose an organisation that holds personal data."),
    ),
    (
        r"the system is not one of the organisation's",
        _l("The system chosen is not one of that organisation's."),
    ),
    (r"the period ends before it starts", _l("The period ends before it starts.")),
    (r"the period cannot end in the future", _l("The period cannot end in the future.")),
    (
        r"you have (?P<count>\d+) complaints open: wait for their answers",
        _l("You have %(count)s complaints open: please wait for their answers."),
    ),
    (
        r"you filed (?P<count>\d+) complaints in the last day: try tomorrow",
        _l("You filed %(count)s complaints in the last day: please try again tomorrow."),
    ),
    (r"(?P<field>.+) is required", _l("Fill in the field “%(field)s”.")),
    (
        r"(?P<field>.+) has at most (?P<size>\d+) characters",
        _l("The field “%(field)s” has at most %(size)s characters."),
    ),
    (
        r"(?P<field>.+) cannot contain NUL or unpaired surrogate characters",
        _l("The field “%(field)s” cannot contain NUL or unpaired surrogate characters."),
    ),
    (r"this complaint is already answered", _l("This complaint is already answered.")),
    (
        r"only the organisation complained to can answer",
        _l("Only the organisation complained to can answer."),
    ),
)
#: A leak report's statuses and its notices' delivery statuses.
LEAK_STATUS_LABELS = {
    "draft": _l("Not submitted yet"),
    "submitted": _l("Submitted"),
}
NOTICE_STATUS_LABELS = {
    "pending": _l("Waiting to be sent"),
    "sending": _l("Being sent"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
}
#: The fields the leak service and the subjects' CSV name in their refusals.
LEAK_FIELD_LABELS = {
    "holder's name": _l("Holder of the data"),
    "description of what leaked": _l("What leaked"),
    "measures taken": _l("Measures taken"),
    "responsible person": _l("Responsible person"),
    "contacts": _l("Contacts"),
    "detection time": _l("Detected at"),
    "leak time": _l("Happened at"),
    # The CSV's columns.
    "name": _l("Subject's name"),
    "iin": _l("IIN"),
    "e-mail address": _l("E-mail address"),
    "phone": _l("Phone"),
}
#: A time the form could not read, or one without a zone (the pages give every time one).
BAD_TIME = _l("Write the time in the field “%(field)s” as a date and hours, e.g. 2026-03-06 15:00.")
#: Refusals of the leak service (qorgan.privacy.leaks) and of the subjects' CSV
#: (qorgan.privacy.leak_csv), as a whole and row by row; ``field`` through LEAK_FIELD_LABELS.
LEAK_REFUSALS = IIN_REFUSALS + _patterns(
    (
        r"the (?P<field>.+) contains (?:a NUL|an unpaired surrogate) character",
        _l("The field “%(field)s” cannot contain NUL or unpaired surrogate characters."),
    ),
    (
        r"the (?P<field>.+) has 1 to (?P<size>[\d,]+) characters",
        _l("Fill in the field “%(field)s” (at most %(size)s characters)."),
    ),
    (r"the (?P<field>.+) needs a time zone", BAD_TIME),
    (r"unknown data category; one of .+", _l("Choose the categories of data from the list.")),
    (
        r"name at least one category of data that leaked",
        _l("Choose at least one category of data that leaked."),
    ),
    (r"the detection time is in the future", _l("The time of detection is in the future.")),
    (
        r"the leak cannot have happened after it was detected",
        _l("The leak cannot have happened after it was detected."),
    ),
    (
        r"no such information system in your organisation",
        _l("No such information system in your organisation."),
    ),
    (
        r"name the holder's BIN, or the system whose owner holds the data",
        _l("Give the holder's BIN, or choose the system whose owner holds the data."),
    ),
    (
        r"the holder's BIN: .+",
        _l("The holder's BIN is not a valid BIN: check its 12 digits for a typo."),
    ),
    # The file as a whole.
    (
        r"the file is UTF-16; .+",
        _l("The file is in UTF-16: save it as “CSV UTF-8” and upload it again."),
    ),
    (
        r"the file is not UTF-8 text \(row (?P<row>\d+) holds bytes that are not\); .+",
        _l(
            "The file is not UTF-8 text (row %(row)s holds bytes that are not): save it as "
            "“CSV UTF-8” and upload it again."
        ),
    ),
    (
        r"the file is larger than (?P<size>\d+) MiB; .+",
        _l("The file is larger than %(size)s MiB: split it and upload the parts to this report."),
    ),
    (
        r"the file has more than (?P<rows>[\d,]+) rows; .+",
        _l("The file has more than %(rows)s rows: split it and upload the parts to this report."),
    ),
    (
        r"the file is empty; the first row names the columns",
        _l("The file is empty: its first row names the columns."),
    ),
    (r"the header is not usable", _l("The first row (the header) cannot be used.")),
    (r"the file has a header but no subjects", _l("The file has a header but no subjects.")),
    (
        r"row (?P<row>\d+) is not valid CSV \(.+\)",
        _l("Row %(row)s is not valid CSV (a quote is not closed or is misplaced)."),
    ),
    (
        r"(?P<total>[\d,]+) rows cannot be used(?: \(.+\))?; nothing was stored",
        _l(
            "Rows that cannot be used: %(total)s. Nothing was stored: correct them and upload "
            "the file again."
        ),
    ),
    # A row.
    (
        r"column (?P<column>\d+) is not one of name, iin, email, phone",
        _l("Column %(column)s is not one of name, iin, email, phone."),
    ),
    (r"the column (?P<column>\w+) appears twice", _l("The column %(column)s appears twice.")),
    (r"the header has no .+ column", _l("The header needs the columns name and iin.")),
    (
        r"the header has neither an email nor a phone column",
        _l("The header needs an email or a phone column."),
    ),
    (
        r"the row has (?P<cells>\d+) cells; the header names (?P<columns>\d+)",
        _l("The row has %(cells)s cells; the header names %(columns)s."),
    ),
    (r"the name is empty", _l("The name is empty.")),
    (
        r"the name is longer than (?P<size>\d+) characters",
        _l("The name is longer than %(size)s characters."),
    ),
    (r"the same IIN as row (?P<row>\d+)", _l("The same IIN as in row %(row)s.")),
    (
        r"give an e-mail address or a phone number, not both",
        _l("Give an e-mail address or a phone number, not both."),
    ),
    (
        r"the e-mail address is not of the form name@domain\.kz",
        _l("The e-mail address is not of the form name@domain.kz."),
    ),
    (
        r"the phone number is not \+7 followed by 10 digits",
        _l("The phone number is not +7 followed by 10 digits."),
    ),
    (r"no e-mail address or phone number", _l("No e-mail address or phone number.")),
)

#: Refusals of the pages themselves.
BAD_DATE = _l("Write dates as YYYY-MM-DD.")
NOT_TEXT = _l(
    "The field “%(field)s” holds something that is not text (bytes that are not UTF-8, such "
    "as an unpaired surrogate)."
)
UNKNOWN_REFUSAL = _l("The request was refused.")


def refusal(
    message: str,
    gettext: Callable[[str], str],
    table: Sequence[tuple[re.Pattern[str], str]] = REFUSALS,
    fields: Mapping[str, str] = FIELD_LABELS,
) -> str:
    """A privacy service's refusal in the page's language (a generic sentence for one this
    table does not know: the English text might carry what the page should not show)."""
    for pattern, template in table:
        found = pattern.fullmatch(message)
        if found is None:
            continue
        values = found.groupdict()
        if "field" in values:
            label = fields.get(values["field"])
            if label is None:
                continue
            values["field"] = gettext(label)
        return gettext(template) % values
    return gettext(UNKNOWN_REFUSAL)


def leak_refusal(message: str, gettext: Callable[[str], str]) -> str:
    """A refusal of the leak service or of a subjects' CSV (a row's reason, too)."""
    return refusal(message, gettext, LEAK_REFUSALS, LEAK_FIELD_LABELS)


def not_text(
    values: Mapping[str, str],
    fields: Mapping[str, str],
    gettext: Callable[[str], str],
    labels: Mapping[str, str] = FIELD_LABELS,
) -> str | None:
    """The refusal for the first of ``fields`` (form field -> the service's name for it) whose
    value is not text, or None. The form parser turns bytes that are not UTF-8 (a lone
    surrogate encoded by hand, say) into U+FFFD, which would otherwise be stored silently in
    place of what was sent."""
    for name, what in fields.items():
        if "\N{REPLACEMENT CHARACTER}" in values.get(name, ""):
            return gettext(NOT_TEXT) % {"field": gettext(labels[what])}
    return None


def staff_purpose(purpose: str, gettext: Callable[[str], str]) -> str:
    """The purpose of a staff read in the citizen's language (as written when not ours)."""
    for pattern, template in STAFF_PURPOSES:
        found = pattern.fullmatch(purpose)
        if found is not None:
            return gettext(template) % found.groupdict()
    return purpose


def as_typed(value: str) -> str:
    """A form's value to show again after a refusal: what cannot be stored or sent in a page
    (NUL, a lone surrogate) as U+FFFD, the refusal having named it."""
    return "".join(
        "\N{REPLACEMENT CHARACTER}" if c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF else c
        for c in value
    )


def template_values() -> dict[str, object]:
    """The tables as the privacy templates use them."""
    return {
        "outcome_names": OUTCOME_LABELS,
        "reason_names": REASON_LABELS,
        "basis_names": LEGAL_BASIS_LABELS,
        "registry_basis_names": REGISTRY_BASIS_LABELS,
        "category_names": CATEGORY_LABELS,
        "consent_status_names": CONSENT_STATUS_LABELS,
        "complaint_status_names": COMPLAINT_STATUS_LABELS,
        "complaint_kind_names": COMPLAINT_KIND_LABELS,
        "leak_status_names": LEAK_STATUS_LABELS,
        "notice_status_names": NOTICE_STATUS_LABELS,
    }
