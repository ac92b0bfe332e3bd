"""Logons per user, host and source address: a successful logon is scored on three features,
each in bits of surprise against what was learned before it.

- ``logon.new_source_ip``: the address never served this user. How surprising depends on the
  user's history: a user who logged on 50 times from two addresses makes a third one a
  3/52 chance (4.1 bits); one with three logons from three addresses makes it ordinary.
  Only after the user's warm-up (``user_warmup`` logons).
- ``logon.unusual_hour``: the hour is one the user rarely logs on at. The user's hour-of-week
  profile is smoothed toward the organisation's (a new user looks like everyone else), and the
  surprise is the density at that hour against no preference (1/24).
- ``logon.after_failures``: failures from the same address in the ``window`` before the
  success, against the organisation's typical count before a success (a Poisson tail).

A logon is a finding when one feature reaches the threshold (:data:`THRESHOLD_BITS`); the
score is the sum of the features that did, and each one's share is its part of the sum.
Nothing fires before the organisation's warm-up (``org_warmup`` authentication events).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from qorgan.detection.anomaly.entities import (
    DEFAULT_CAP,
    EntityStateError,
    EntityTable,
    need,
    pattern,
)
from qorgan.detection.anomaly.findings import listing
from qorgan.detection.anomaly.profiles import (
    HourProfile,
    bits,
    hour_of_week,
    novelty,
    poisson_tail_bits,
    smoothed_density,
)
from qorgan.detection.anomaly.security_events import Logon

#: Bits of surprise a feature needs to count: 3 bits is an eight-to-one chance against.
THRESHOLD_BITS = 3.0
#: Failures from one address before a success that may count at all (below: typing errors).
MIN_FAILURES = 5
#: Addresses remembered per user (least recently used forgotten first).
MAX_USER_ADDRESSES = 256
#: Failure times remembered per address within the window.
MAX_FAILURES_KEPT = 10_000
#: Rejected patterns remembered (oldest forgotten first).
MAX_SUPPRESSED = 10_000
#: Pseudo-logons of the organisation's profile mixed into each user's.
ORG_WEIGHT = 5.0
#: The organisation's prior for failures before a success, and its weight in successes.
PRIOR_FAILURES, PRIOR_WEIGHT = 0.2, 2.0


@dataclass(slots=True)
class UserLogons:
    logons: int = 0
    hours: HourProfile = field(default_factory=HourProfile)
    addresses: OrderedDict[str, int] = field(default_factory=OrderedDict)
    with_address: int = 0

    def learn_address(self, ip: str, weight: int = 1) -> None:
        self.addresses[ip] = self.addresses.get(ip, 0) + weight
        self.addresses.move_to_end(ip)
        self.with_address += weight
        while len(self.addresses) > MAX_USER_ADDRESSES:
            self.addresses.popitem(last=False)

    def dump(self) -> dict[str, Any]:
        return {
            "logons": self.logons,
            "hours": self.hours.dump(),
            "addresses": list(self.addresses.items()),
            "with_address": self.with_address,
        }

    @classmethod
    def restore(cls, data: Any) -> UserLogons:
        user = cls(
            logons=need(data, "logons", int),
            hours=HourProfile.restore(need(data, "hours", list)),
            with_address=need(data, "with_address", int),
        )
        for row in need(data, "addresses", list):
            if not (isinstance(row, list) and len(row) == 2 and isinstance(row[1], int)):
                raise EntityStateError("a user's addresses are [address, count] pairs")
            user.addresses[str(row[0])] = row[1]
        return user


@dataclass(frozen=True, slots=True)
class Feature:
    name: str
    bits: float
    typical: str | int | float | None
    actual: str | int | float | None
    pattern: str


class LogonBaseline:
    """What an organisation's logons look like: per user, per source address, and overall."""

    def __init__(
        self,
        *,
        tz: tzinfo,
        cap: int = DEFAULT_CAP,
        org_warmup: int = 100,
        hour_warmup: int = 20,
        user_warmup: int = 3,
        window: float = 600.0,
    ) -> None:
        self.tz = tz
        self.org_warmup = org_warmup
        self.hour_warmup = hour_warmup
        self.user_warmup = user_warmup
        self.window = window
        self.users: EntityTable[UserLogons] = EntityTable(UserLogons, cap)
        self.failures: EntityTable[deque[tuple[float, int]]] = EntityTable(deque, cap)
        self.org_hours = HourProfile()
        self.auth_events = 0
        self.successes = 0
        self.failures_before_success = 0
        self.suppressed: OrderedDict[str, None] = OrderedDict()
        #: sshd sessions whose "Accepted" was counted (their PAM session is the same logon).
        self._accepted: deque[str] = deque(maxlen=1024)
        #: ``session@second`` of recent failures: sshd's "Failed password" and PAM's
        #: "authentication failure" for the same attempt count once, whichever comes first.
        self._failed: OrderedDict[str, None] = OrderedDict()

    @property
    def warm(self) -> bool:
        return self.auth_events >= self.org_warmup

    def typical_failures(self) -> float:
        return (self.failures_before_success + PRIOR_FAILURES * PRIOR_WEIGHT) / (
            self.successes + PRIOR_WEIGHT
        )

    def _recent_failures(self, ip: str, now: float | None) -> int:
        queue = self.failures.get(ip)
        if not queue:
            return 0
        if now is None:
            return 0
        while queue and queue[0][0] < now - self.window:
            queue.popleft()
        return sum(w for t, w in queue if t <= now)

    def score(self, logon: Logon, moment: datetime | None) -> list[Feature]:
        """The features of a successful logon that reach the threshold (none while warming)."""
        if not logon.success or not self.warm or self.duplicate(logon):
            return []
        user_key = logon.user
        user = self.users.get(user_key) if user_key else None
        host, ip = logon.host, logon.ip
        found: list[Feature] = []
        now = moment.timestamp() if moment else None
        if ip is not None:
            count = self._recent_failures(ip, now)
            if count >= MIN_FAILURES:
                typical = self.typical_failures()
                surprise = poisson_tail_bits(count, typical)
                key = pattern("logon.after_failures", host=host, user=user_key, ip=ip)
                if surprise >= THRESHOLD_BITS and key not in self.suppressed:
                    per = f"{typical:.2g}/{self.window / 60:g} min"
                    found.append(Feature("logon.after_failures", surprise, per, count, key))
        if moment is not None and user_key and self.org_hours.total >= self.hour_warmup:
            how = hour_of_week(moment.astimezone(self.tz))
            profile = user if user is not None else UserLogons()
            density = smoothed_density(profile.hours, self.org_hours, how, ORG_WEIGHT)
            surprise = bits(density * 24)
            hour = f"{how % 24:02d}"
            key = pattern("logon.unusual_hour", host=host, user=user_key, hour=hour)
            if surprise >= THRESHOLD_BITS and key not in self.suppressed:
                own = profile.logons >= self.user_warmup
                typical = (profile.hours if own else self.org_hours).active_hours()
                found.append(Feature("logon.unusual_hour", surprise, typical, hour, key))
        warm_user = user is not None and user.logons >= self.user_warmup
        if ip is not None and user is not None and warm_user and ip not in user.addresses:
            surprise = bits(novelty(len(user.addresses), user.with_address))
            key = pattern("logon.new_source_ip", host=host, user=user_key, ip=ip)
            if surprise >= THRESHOLD_BITS and key not in self.suppressed:
                known = listing(list(user.addresses), limit=3)
                found.append(Feature("logon.new_source_ip", surprise, known, ip, key))
        return found

    def _twin_failure(self, logon: Logon, now: float | None) -> bool:
        """Whether this failure is the other line of an attempt already counted."""
        if logon.session is None or now is None:
            return False
        key = f"{logon.session}@{int(now)}|{'pam' if logon.pam_session else 'sshd'}"
        twin = f"{logon.session}@{int(now)}|{'sshd' if logon.pam_session else 'pam'}"
        if twin in self._failed:
            del self._failed[twin]
            return True
        self._failed[key] = None
        if len(self._failed) > 1024:
            self._failed.popitem(last=False)
        return False

    def duplicate(self, logon: Logon) -> bool:
        return logon.pam_session and logon.session is not None and logon.session in self._accepted

    def learn(self, logon: Logon, moment: datetime | None) -> None:
        now = moment.timestamp() if moment else None
        if not logon.success and self._twin_failure(logon, now):
            return
        self.auth_events += logon.weight
        if not logon.success:
            if logon.ip is not None and now is not None:
                queue = self.failures.touch(logon.ip)
                queue.append((now, logon.weight))
                while len(queue) > MAX_FAILURES_KEPT or queue[0][0] < now - self.window:
                    queue.popleft()
            return
        if self.duplicate(logon):
            return
        if not logon.pam_session and logon.session is not None:
            self._accepted.append(logon.session)
        self.successes += 1
        if logon.ip is not None:
            self.failures_before_success += self._recent_failures(logon.ip, now)
        how = hour_of_week(moment.astimezone(self.tz)) if moment else None
        if how is not None:
            self.org_hours.add(how)
        if logon.user:
            user = self.users.touch(logon.user)
            user.logons += 1
            if how is not None:
                user.hours.add(how)
            if logon.ip is not None:
                user.learn_address(logon.ip)

    def absorb(self, finding: Mapping[str, Any], moment: datetime | None) -> None:
        """A rejected logon finding: its address joins the user's, its hour the user's
        profile, and its patterns stop firing."""
        entity = finding.get("entity") or {}
        user_key, ip = entity.get("user"), entity.get("source_ip")
        features = {c.get("feature") for c in finding.get("contributions") or ()}
        if user_key:
            user = self.users.touch(str(user_key))
            if ip and "logon.new_source_ip" in features:
                user.learn_address(str(ip))
            if moment is not None and "logon.unusual_hour" in features:
                user.hours.add(hour_of_week(moment.astimezone(self.tz)), 3.0)
        host = entity.get("host")
        for part in finding.get("contributions") or ():
            name = part.get("feature")
            if name == "logon.unusual_hour":
                hour = str(part.get("actual"))
                self.suppress(pattern(name, host=host, user=user_key, hour=hour))
            elif name in ("logon.after_failures", "logon.new_source_ip"):
                self.suppress(pattern(name, host=host, user=user_key, ip=ip))
        if finding.get("pattern"):
            self.suppress(str(finding["pattern"]))

    def suppress(self, key: str) -> None:
        self.suppressed[key] = None
        self.suppressed.move_to_end(key)
        while len(self.suppressed) > MAX_SUPPRESSED:
            self.suppressed.popitem(last=False)

    def state(self) -> dict[str, Any]:
        return {
            "users": self.users.dump(UserLogons.dump),
            "failures": self.failures.dump(lambda q: [list(item) for item in q]),
            "org_hours": self.org_hours.dump(),
            "auth_events": self.auth_events,
            "successes": self.successes,
            "failures_before_success": self.failures_before_success,
            "suppressed": list(self.suppressed),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.users.restore(need(state, "users", list), UserLogons.restore)

        def failures(rows: Any) -> deque[tuple[float, int]]:
            if not isinstance(rows, list):
                raise EntityStateError("failures are a list of [time, count] pairs")
            return deque((float(t), int(w)) for t, w in rows)

        self.failures.restore(need(state, "failures", list), failures)
        self.org_hours = HourProfile.restore(need(state, "org_hours", list))
        self.auth_events = need(state, "auth_events", int)
        self.successes = need(state, "successes", int)
        self.failures_before_success = need(state, "failures_before_success", int)
        self.suppressed = OrderedDict.fromkeys(str(k) for k in need(state, "suppressed", list))
