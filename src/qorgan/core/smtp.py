"""Talking to the configured SMTP server (``QORGAN_SMTP_*``): one way to connect, and one way
to turn a failure into a line fit for a database row and a log. Here in ``core`` because both
incident notifications and the personal-data service's leak notices send e-mail, and neither
may import the other.

An SMTP server's answer often quotes the recipient's address back ("<a@b.kz>: mailbox
unavailable"); :func:`describe` removes anything that looks like an address, so a recorded
error never holds the personal data it was about.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qorgan.core.settings import Settings

#: The longest error line kept.
MAX_ERROR = 500
#: Anything that looks like an e-mail address, removed from recorded errors and logs.
ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")


def connect(settings: Settings) -> smtplib.SMTP:
    """A connection to ``settings.smtp_host``: upgraded to TLS (``smtp_starttls``) and logged
    in (``smtp_user``) before anything is sent; every step bounded by ``smtp_timeout``."""
    smtp = smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=settings.smtp_timeout)
    try:
        smtp.ehlo()
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if settings.smtp_user:
            password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
            smtp.login(settings.smtp_user, password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def describe(exc: BaseException) -> str:
    """An SMTP or network failure in a line for the record and the log, without addresses."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        answers = [_answer(code, text) for code, text in exc.recipients.values()]
        message = "recipient refused: " + "; ".join(answers)
    elif isinstance(exc, smtplib.SMTPResponseException):
        message = _answer(exc.smtp_code, exc.smtp_error)
    elif isinstance(exc, OSError) and exc.strerror:
        message = f"{type(exc).__name__}: {exc.strerror}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return ADDRESS.sub("<address>", message)[:MAX_ERROR]


def _answer(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.split())}"
