"""Leak notices by SMS, through an HTTP gateway (``QORGAN_SMS_GATEWAY_URL``).

Kazakh operators and aggregators each have their own API; this is the common shape of them: a
JSON ``POST`` of ``{"to": "+77011234567", "text": ..., "sender": ..., "client_ref": ...}``
with ``Authorization: Bearer <QORGAN_SMS_GATEWAY_TOKEN>``, answered 2xx when taken. A gateway
with another shape is a subclass overriding :meth:`HttpSmsGateway.request`. ``client_ref`` is
``leak-notice-<id>``, the same on every attempt: a gateway that drops repeated references
sends a redelivered notice once; one that does not may send it twice (the outbox delivers at
least once).

A 4xx answer (other than 408 and 429) means the request itself is wrong and is not retried;
anything else (5xx, a timeout, a network error) is retried by the outbox. Nothing of the
gateway's answer is recorded but its status code: it may quote the number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from qorgan.privacy.channels.base import Channel, ChannelError, Message

if TYPE_CHECKING:
    from qorgan.core.settings import Settings


class HttpSmsGateway(Channel):
    name = "sms"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        sender: str = "Qorgan",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url
        self.sender = sender
        self.client = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpSmsGateway:
        token = settings.sms_gateway_token
        return cls(
            settings.sms_gateway_url or "",
            token=token.get_secret_value() if token else None,
            sender=settings.sms_sender,
            timeout=settings.sms_timeout,
        )

    def request(self, message: Message) -> dict[str, Any]:
        """The JSON body for ``message``."""
        return {
            "to": message.address,
            "text": message.short,
            "sender": self.sender,
            "client_ref": f"leak-notice-{message.notice_id}",
        }

    def send(self, message: Message) -> None:
        try:
            answer = self.client.post(self.url, json=self.request(message))
        except httpx.HTTPError as exc:
            raise ChannelError(f"SMS gateway not reached: {type(exc).__name__}") from None
        status = answer.status_code
        if 200 <= status < 300:
            return
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise ChannelError(f"SMS gateway answered {status}", permanent=permanent)

    def close(self) -> None:
        self.client.close()
