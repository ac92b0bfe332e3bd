"""Leak notices as JSON lines in a file: for tests, dry runs and a mail room that prints them.

Each notice is one line, ``{"notice_id", "leak_id", "channel", "to", "subject", "text"}``,
written and fsync'd before :meth:`FileChannel.send` returns. The file is idempotent by notice
id: a notice the file already holds (sent, then the process died before the outbox recorded
it, then redelivered) is not written again, so the file has exactly one line per notice
however often the outbox restarts. Several processes may write one file: each holds an
exclusive lock (``flock``) while it reads what others appended and appends its own line. A
line cut short by a crash mid-write (no newline) is removed before the next one is written.

The lines hold addresses and names: the file is made readable by its owner only (0600).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import orjson

from qorgan.privacy.channels.base import Channel, ChannelError, Message


class FileChannel(Channel):
    name = "file"
    idempotent = True

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._offset = 0  # how much of the file this instance has read
        self._written: set[int] = set()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        return self._fd

    def _catch_up(self, fd: int) -> None:
        """Read the lines appended since last time (by anyone); drop a torn last line."""
        end = os.fstat(fd).st_size
        if end < self._offset:  # the file was replaced or truncated: read it all again
            self._offset, self._written = 0, set()
        if end == self._offset:
            return
        data = os.pread(fd, end - self._offset, self._offset)
        complete = data.rfind(b"\n") + 1
        for line in data[:complete].splitlines():
            if line.strip():
                try:
                    self._written.add(int(orjson.loads(line)["notice_id"]))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # not ours; kept as it is
        if complete < len(data):
            os.ftruncate(fd, self._offset + complete)  # a line torn by a crash
        self._offset += complete

    def seen(self) -> set[int]:
        """The notice ids the file holds."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            self._catch_up(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return set(self._written)

    def send(self, message: Message) -> None:
        line = orjson.dumps(
            {
                "notice_id": message.notice_id,
                "leak_id": message.leak_id,
                "channel": message.channel,
                "to": message.address,
                "subject": message.subject,
                "text": message.short if message.channel == "sms" else message.body,
            }
        )
        try:
            fd = self._open()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                self._catch_up(fd)
                if message.notice_id in self._written:
                    return  # written before a crash: once is enough
                data = memoryview(line + b"\n")
                while data:  # a regular file takes it in one write; a full disk may not
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
                self._offset += len(line) + 1
                self._written.add(message.notice_id)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise ChannelError(f"the notice file cannot be written: {exc.strerror}") from None

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
