"""A proof-of-work check for the public forms, with no third-party service: the server hands
out a signed challenge, the browser finds a number that makes a hash of it start with enough
zero bits, and the server checks the signature, the expiry and the hash.

A challenge is ``v1.<id>.<difficulty>.<expires>.<mac>``: 16 random bytes as hex, the number of
leading zero bits asked for, the Unix time it expires, and an HMAC-SHA256 of those under a key
derived from the application's secret, so no state is kept until a form is sent. A solution is
a decimal number ``n`` such that ``SHA-256("<challenge>:<n>")`` starts with ``difficulty``
zero bits: about 2**difficulty hashes to find (``static/report.js``), one to check. The caller
keeps the ids of spent challenges (the reports table does), so each is used once.

Pure logic: no web framework, no database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

VERSION = "v1"
#: Leading zero bits asked for: 2**17 (131,072) hashes on average, about three seconds of a
#: browser's WebCrypto on a shared server core (Chromium, measured: 47,000 hashes a second),
#: spent while the person fills the form in; a tenth of a second for a Python client, so the
#: rate limits, not the proof of work, stop a determined sender.
DIFFICULTY = 17
#: The easiest and hardest challenges the server will sign or accept.
MIN_DIFFICULTY = 1
MAX_DIFFICULTY = 32
#: Seconds a challenge stays valid: long enough to fill a long form (the script fetches a new
#: one when the page has been open longer).
LIFETIME = 30 * 60
MAX_SOLUTION_DIGITS = 20
MAX_TOKEN = 200


class ProofError(Exception):
    """A challenge or its solution is refused; the message says why (fit for the form)."""


MISSING = "the anti-spam check is missing: this form needs JavaScript"
INVALID = "the anti-spam check is not valid; reload the page and send the form again"
EXPIRED = "the anti-spam check has expired; send the form again"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A signed challenge as the browser receives it."""

    token: str
    id: str
    difficulty: int
    expires: int


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits the digest starts with."""
    count = 0
    for byte in digest:
        if byte:
            return count + 8 - byte.bit_length()
        count += 8
    return count


def solves(token: str, solution: str, difficulty: int) -> bool:
    """Whether ``solution`` solves the challenge ``token`` at ``difficulty``."""
    digest = hashlib.sha256(f"{token}:{solution}".encode()).digest()
    return leading_zero_bits(digest) >= difficulty


def solve(token: str, difficulty: int) -> str:
    """A solution found by trying 0, 1, 2, ... (what the browser's script does)."""
    n = 0
    while not solves(token, str(n), difficulty):
        n += 1
    return str(n)


class ProofOfWork:
    """Issues and checks challenges under a key derived from ``secret``."""

    def __init__(
        self,
        secret: bytes,
        *,
        difficulty: int = DIFFICULTY,
        lifetime: int = LIFETIME,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not MIN_DIFFICULTY <= difficulty <= MAX_DIFFICULTY:
            raise ValueError(f"difficulty must be {MIN_DIFFICULTY} to {MAX_DIFFICULTY}")
        self._key = hmac.new(secret, b"qorgan:proof-of-work:v1", hashlib.sha256).digest()
        self.difficulty = difficulty
        self.lifetime = lifetime
        self.clock = clock

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def issue(self) -> Challenge:
        """A fresh challenge at the current difficulty."""
        challenge_id = secrets.token_hex(16)
        expires = int(self.clock()) + self.lifetime
        body = f"{VERSION}.{challenge_id}.{self.difficulty}.{expires}"
        return Challenge(f"{body}.{self._mac(body)}", challenge_id, self.difficulty, expires)

    def verify(self, token: str, solution: str) -> str:
        """The id of the challenge ``token`` when it is ours, unexpired, at least as hard as
        the current difficulty and solved by ``solution``; :class:`ProofError` otherwise.
        Whether it was spent already is the caller's to check."""
        if not token or not solution:
            raise ProofError(MISSING)
        parts = token.split(".")
        if len(token) > MAX_TOKEN or len(parts) != 5 or parts[0] != VERSION:
            raise ProofError(INVALID)
        _, challenge_id, difficulty_text, expires_text, mac = parts
        if not hmac.compare_digest(self._mac(".".join(parts[:4])), mac):
            raise ProofError(INVALID)
        difficulty, expires = int(difficulty_text), int(expires_text)  # signed: ours
        if expires < self.clock():
            raise ProofError(EXPIRED)
        if difficulty < self.difficulty:
            raise ProofError(INVALID)
        if (
            not solution.isascii()
            or not solution.isdigit()
            or len(solution) > MAX_SOLUTION_DIGITS
            or not solves(token, solution, difficulty)
        ):
            raise ProofError(INVALID)
        return challenge_id
