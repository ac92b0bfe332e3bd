"""Leak notices by e-mail, over the SMTP server the console's notifications use
(:mod:`qorgan.core.smtp`), one connection per delivery run.

At least once, not exactly once: the server may accept a message and the process die before
the outbox records it; the notice is then sent again when its lease ends. The ``Message-ID``
is made from the notice's id (``<leak-notice-<id>.<leak>@<sender's domain>>``), the same on
every attempt, so a mail system or reader that drops duplicates by ``Message-ID`` shows one;
SMTP gives no way to ask the server whether it already took a message.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from qorgan.core.db import utcnow
from qorgan.core.smtp import connect, describe
from qorgan.privacy.channels.base import Channel, ChannelError, Message

if TYPE_CHECKING:
    from qorgan.core.settings import Settings


class EmailChannel(Channel):
    name = "email"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = settings.smtp_from or ""
        self.domain = self.sender.rpartition("@")[2] or "qorgan.invalid"
        self._smtp: smtplib.SMTP | None = None

    def message(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = message.subject
        mail["Date"] = format_datetime(utcnow())
        mail["Message-ID"] = f"<leak-notice-{message.notice_id}.{message.leak_id}@{self.domain}>"
        mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        mail.set_content(message.body)
        mail["Content-Language"] = "kk, ru, en"  # after the content, which resets Content-*
        return mail

    def send(self, message: Message) -> None:
        mail = self.message(message)
        try:
            if self._smtp is None:
                self._smtp = connect(self.settings)
            self._smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise ChannelError(
                describe(exc), permanent=all(500 <= c < 600 for c in codes)
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            # SMTPException is an OSError too; a refusal of this message leaves the connection
            # usable, anything else may not have.
            if isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
                exc, smtplib.SMTPResponseException
            ):
                self.close()
            raise ChannelError(describe(exc)) from None

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()
