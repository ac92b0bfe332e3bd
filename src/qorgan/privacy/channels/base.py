"""What a channel is: something that hands one notice to its recipient, or says why not.

A channel is told a :class:`Message` (the notice's id, the address, and both texts: it uses
the one that suits it) and either returns, meaning the notice is handed over, or raises
:class:`ChannelError`. ``permanent`` says that trying again cannot help (an address the
server refuses for good); otherwise the outbox retries later. A channel's error messages,
like the outbox's records, never hold the address or the text.

To implement one: subclass :class:`Channel`, set ``name``, implement :meth:`Channel.send`, and
release connections in :meth:`Channel.close`. Use ``message.notice_id`` as the idempotency
key wherever the transport offers one: the outbox delivers at least once, and after a crash
between handing a notice over and recording it, the same notice comes again.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from qorgan.core.errors import QorganError


class ChannelError(QorganError):
    """A notice was not handed over. The message holds no address or text."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, repr=False)
class Message:
    """One notice, ready to send. Its ``repr`` holds the id only."""

    notice_id: int
    leak_id: int
    channel: str  # "email" or "sms"
    address: str
    subject: str
    body: str
    short: str  # the SMS text

    def __repr__(self) -> str:
        return f"Message(notice_id={self.notice_id})"


class Channel(ABC):
    """Hands notices to recipients; one instance serves one delivery run at a time."""

    name: str = "channel"
    #: Whether sending one notice twice hands it over once (the channel skips a notice id it
    #: already holds); the outbox then records such notices a batch at a time.
    idempotent: bool = False

    @abstractmethod
    def send(self, message: Message) -> None:
        """Hand ``message`` over, or raise :class:`ChannelError`."""

    def close(self) -> None:  # noqa: B027 - a channel without connections needs nothing
        """Release what :meth:`send` opened (a connection); called once a run ends."""
