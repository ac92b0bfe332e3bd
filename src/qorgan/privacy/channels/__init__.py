"""The ways a leak notice reaches a subject, behind one interface (:mod:`.base`): e-mail over
the configured SMTP server (:mod:`.email`), SMS through an HTTP gateway (:mod:`.sms`), and a
file of JSON lines (:mod:`.file`) for tests and dry runs. :func:`from_settings` builds those
the settings configure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qorgan.privacy.channels.base import Channel, ChannelError, Message
from qorgan.privacy.channels.email import EmailChannel
from qorgan.privacy.channels.file import FileChannel
from qorgan.privacy.channels.sms import HttpSmsGateway

if TYPE_CHECKING:
    from qorgan.core.settings import Settings

__all__ = [
    "Channel",
    "ChannelError",
    "EmailChannel",
    "FileChannel",
    "HttpSmsGateway",
    "Message",
    "from_settings",
]


def from_settings(settings: Settings) -> dict[str, Channel]:
    """The channels the settings configure, by contact channel (``email``, ``sms``); a
    notice whose channel is missing here waits."""
    channels: dict[str, Channel] = {}
    if settings.email_enabled:
        channels["email"] = EmailChannel(settings)
    if settings.sms_gateway_url:
        channels["sms"] = HttpSmsGateway.from_settings(settings)
    return channels
