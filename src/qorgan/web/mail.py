"""Notification e-mails worded in the recipient's language, from the console's catalogues.

:func:`compose` is the composer that ``qorgan.incidents.notifications`` sends with (the
console's notifier and ``qorgan incidents notify``): a subject and a plain-text body from the
templates below, each a message of the catalogues, so translators see them with the pages'.
An e-mail says what happened, the incident's reference and title (the service withholds the
title of TLP:RED incidents) and links to the console; never a message's text.
"""

from __future__ import annotations

from qorgan.core.i18n import LANGUAGES, local_time
from qorgan.incidents.notifications import Mail
from qorgan.web.i18n import _l, translations
from qorgan.web.labels import CLOCK_LABELS, NOTIFICATION_LABELS

SUBJECTS = {
    "assigned": _l("[Qorgan] %(reference)s is assigned to you"),
    "due_soon": _l("[Qorgan] %(reference)s: a deadline is due soon"),
    "overdue": _l("[Qorgan] %(reference)s: a deadline has passed"),
    "reported": _l("[Qorgan] %(reference)s was reported to you"),
    "answered": _l("[Qorgan] %(reference)s: KZ-CERT answered"),
}
#: The body's first paragraph: what happened.
WHAT = {
    "assigned": _l("The incident %(reference)s is assigned to you."),
    "due_soon": _l("The deadline “%(measure)s” of incident %(reference)s is at %(due)s."),
    "overdue": _l("The deadline “%(measure)s” of incident %(reference)s passed at %(due)s."),
    "reported": _l("%(organisation)s reported the incident %(reference)s to you."),
    "answered": _l("The national coordinator answered on incident %(reference)s."),
}
ANSWERS = {
    "question": _l("The national coordinator asked a question on incident %(reference)s."),
    "recommendation": _l(
        "The national coordinator gave a recommendation on incident %(reference)s."
    ),
}
TITLE = _l("Title: %(title)s")
WITHHELD = _l("The title is not sent by e-mail (TLP:RED).")
OPEN = _l("Open it in Qorgan: %(link)s")
WHY = _l("You get this e-mail because of your notification choices: %(link)s")
ANOTHER_ORGANISATION = _l("An organisation")


def compose(mail: Mail) -> tuple[str, str]:
    """The e-mail's subject and plain-text body in ``mail.language``."""
    language = mail.language if mail.language in LANGUAGES else LANGUAGES[0]
    gettext = translations(language).gettext
    measure = gettext(CLOCK_LABELS[mail.measure]) if mail.measure in CLOCK_LABELS else ""
    values = {
        "reference": mail.reference,
        "measure": measure,
        "due": local_time(mail.due_at, language, mail.timezone, "short") if mail.due_at else "—",
        "organisation": mail.organisation or gettext(ANOTHER_ORGANISATION),
    }
    what = WHAT[mail.kind]
    if mail.kind == "answered" and mail.message_kind in ANSWERS:
        what = ANSWERS[mail.message_kind]
    subject = gettext(SUBJECTS[mail.kind]) % values
    lines = [gettext(what) % values, ""]
    if mail.title is None:
        lines.append(gettext(WITHHELD))
    else:
        lines.append(gettext(TITLE) % {"title": mail.title})
    lines += [
        gettext(OPEN) % {"link": mail.link},
        "",
        "-- ",
        gettext(NOTIFICATION_LABELS[mail.kind]) + " · Qorgan",
        gettext(WHY) % {"link": mail.preferences_link},
    ]
    return subject, "\n".join(lines) + "\n"
