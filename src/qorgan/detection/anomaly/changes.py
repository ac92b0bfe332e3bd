"""First-seen changes on a host: a parent-child process pair, a service, an account or an
administrator group membership never seen there before.

"Never seen" alone would fire all the time on a busy host, so each is scored by how often
something new of its kind has turned up there (bits of surprise):

- ``process.new_pair``: a child the parent never started, against how often this parent
  started a new child (each child was new once); a parent never seen starting anything,
  against how often a new parent appears on the host (Good-Turing: the share of starts by
  parents seen only once so far). Both are smoothed by one;
- ``service.new_on_host``: how rare service installs are among the host's events;
  ``service.new_in_org``: how few of the organisation's hosts have this service;
- ``account.new_user`` / ``account.admin_group_add``: how rare such changes are among the
  host's events.

Nothing fires before the host's warm-up (``host_warmup`` events; ``process_warmup`` process
starts for pairs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qorgan.detection.anomaly.entities import DEFAULT_CAP, EntityTable, need, pattern
from qorgan.detection.anomaly.findings import listing
from qorgan.detection.anomaly.profiles import bits, novelty
from qorgan.detection.anomaly.security_events import AccountChange, ProcessStart, ServiceInstall

#: Bits a first-seen change needs to be a finding: a one-in-32 chance.
THRESHOLD_BITS = 5.0
#: Parents per host, children per parent, services and account changes per host remembered.
MAX_PER_HOST = 2_000


def _bounded_add(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    if len(table) > MAX_PER_HOST:
        del table[next(iter(table))]  # the oldest first-seen


@dataclass(slots=True)
class HostChanges:
    events: int = 0
    starts: int = 0
    parents: dict[str, dict[str, int]] = field(default_factory=dict)
    installs: int = 0
    services: dict[str, int] = field(default_factory=dict)
    account_changes: int = 0
    accounts: dict[str, int] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "starts": self.starts,
            "parents": self.parents,
            "installs": self.installs,
            "services": self.services,
            "account_changes": self.account_changes,
            "accounts": self.accounts,
        }

    @classmethod
    def restore(cls, data: Any) -> HostChanges:
        return cls(
            events=need(data, "events", int),
            starts=need(data, "starts", int),
            parents={str(p): dict(c) for p, c in need(data, "parents", dict).items()},
            installs=need(data, "installs", int),
            services=dict(need(data, "services", dict)),
            account_changes=need(data, "account_changes", int),
            accounts=dict(need(data, "accounts", dict)),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A scored first-seen change: its features as ``(name, bits, typical, actual)``."""

    detector: str
    features: tuple[tuple[str, float, str | int | None, str | int | None], ...]
    pattern: str
    entity: dict[str, str]
    identifiers: tuple[str, ...]
    summary: str

    @property
    def score(self) -> float:
        return sum(f[1] for f in self.features)


class HostBaseline:
    """Per host: its process tree, services and accounts; per organisation: which hosts have
    which services."""

    def __init__(
        self, *, cap: int = DEFAULT_CAP, host_warmup: int = 100, process_warmup: int = 100
    ) -> None:
        self.host_warmup = host_warmup
        self.process_warmup = process_warmup
        self.hosts: EntityTable[HostChanges] = EntityTable(HostChanges, cap)
        self.service_hosts: EntityTable[list[int]] = EntityTable(lambda: [0], cap)
        self.hosts_with_services = 0
        self.suppressed: set[str] = set()

    def seen(self, host: str) -> HostChanges:
        """Count one event of ``host`` (any event: the base of the rarity of changes)."""
        state = self.hosts.touch(host)
        state.events += 1
        return state

    # -- processes -------------------------------------------------------------------------
    def score_process(self, fact: ProcessStart) -> Change | None:
        host = self.hosts.get(fact.host)
        if host is None or host.starts < self.process_warmup:
            return None
        children = host.parents.get(fact.parent)
        if children is not None and fact.child in children:
            return None
        key = pattern("process.new_pair", host=fact.host, parent=fact.parent, child=fact.child)
        if key in self.suppressed:
            return None
        if children is None:
            once = sum(1 for c in host.parents.values() if sum(c.values()) == 1)
            surprise = bits(novelty(once, host.starts))
            typical = listing(list(host.parents))
            known = f"a parent never seen there (parents seen: {typical})"
        else:
            surprise = bits(novelty(len(children), sum(children.values())))
            typical = listing(list(children))
            known = f"{fact.parent} has started only {typical} there"
        if surprise < THRESHOLD_BITS:
            return None
        actual = f"{fact.parent} -> {fact.child}"
        return Change(
            "entity.process_pair",
            (("process.new_pair", surprise, typical, actual),),
            key,
            {"host": fact.host, "parent": fact.parent, "child": fact.child}
            | ({"user": fact.user} if fact.user else {}),
            (fact.user,) if fact.user else (),
            f"{fact.parent} started {fact.child} on {fact.host}, never seen there before: {known}",
        )

    def learn_process(self, fact: ProcessStart) -> None:
        host = self.hosts.touch(fact.host)
        host.starts += 1
        children = host.parents.get(fact.parent)
        if children is None:
            children = {}
            _bounded_add(host.parents, fact.parent, children)
        if fact.child in children:
            children[fact.child] += 1
        else:
            _bounded_add(children, fact.child, 1)

    # -- services --------------------------------------------------------------------------
    def score_service(self, fact: ServiceInstall) -> Change | None:
        host = self.hosts.get(fact.host)
        name = fact.name.lower()
        if host is None or host.events < self.host_warmup or name in host.services:
            return None
        key = pattern("service.new", host=fact.host, service=name)
        if key in self.suppressed:
            return None
        on_host = bits((host.installs + 1.0) / (host.events + 2.0))
        spread = self.service_hosts.get(name)
        hosts = spread[0] if spread else 0
        in_org = bits((hosts + 1.0) / (self.hosts_with_services + 2.0))
        features = [
            ("service.new_on_host", on_host, host.installs, fact.name),
            (
                "service.new_in_org",
                in_org,
                f"{hosts}/{self.hosts_with_services}",
                fact.image or fact.name,
            ),
        ]
        change = Change(
            "entity.service",
            tuple(f for f in features if f[1] > 0),
            key,
            {"host": fact.host, "service": fact.name},
            (),
            f"service {fact.name} installed on {fact.host}, never seen there before"
            f" ({host.installs} service installs there so far; the service is on {hosts} of the"
            f" {self.hosts_with_services} hosts with services)",
        )
        return change if change.score >= THRESHOLD_BITS else None

    def learn_service(self, fact: ServiceInstall) -> None:
        host = self.hosts.touch(fact.host)
        name = fact.name.lower()
        host.installs += 1
        if name not in host.services:
            if not host.services:
                self.hosts_with_services += 1
            _bounded_add(host.services, name, 1)
            self.service_hosts.touch(name)[0] += 1

    # -- accounts --------------------------------------------------------------------------
    def score_account(self, fact: AccountChange) -> Change | None:
        host = self.hosts.get(fact.host)
        change_key = f"{fact.kind}|{fact.user}|{(fact.group or '').lower()}"
        if host is None or host.events < self.host_warmup or change_key in host.accounts:
            return None
        feature = f"account.{fact.kind}"
        key = pattern(feature, host=fact.host, user=fact.user, group=fact.group)
        if key in self.suppressed:
            return None
        surprise = bits((host.account_changes + 1.0) / (host.events + 2.0))
        if surprise < THRESHOLD_BITS:
            return None
        if fact.kind == "admin_group_add":
            actual = f"{fact.user} -> {fact.group}"
            summary = f"{fact.user} added to administrator group {fact.group} on {fact.host}"
        else:
            actual = fact.user
            summary = f"new account {fact.user} created on {fact.host}"
        summary += f" ({host.account_changes} account changes in its {host.events} events before)"
        return Change(
            "entity.account",
            ((feature, surprise, host.account_changes, actual),),
            key,
            {"host": fact.host, "user": fact.user} | ({"group": fact.group} if fact.group else {}),
            (fact.user,),
            summary,
        )

    def learn_account(self, fact: AccountChange) -> None:
        host = self.hosts.touch(fact.host)
        host.account_changes += 1
        _bounded_add(host.accounts, f"{fact.kind}|{fact.user}|{(fact.group or '').lower()}", 1)

    def absorb(self, finding: Mapping[str, Any]) -> None:
        """A rejected change becomes known on its host, and its pattern stops firing."""
        entity = finding.get("entity") or {}
        host_name = entity.get("host")
        detector = finding.get("detector")
        if host_name:
            host = str(host_name)
            if detector == "entity.process_pair" and entity.get("parent") and entity.get("child"):
                self.learn_process(
                    ProcessStart(host, str(entity["parent"]), str(entity["child"]), None)
                )
            elif detector == "entity.service" and entity.get("service"):
                self.learn_service(ServiceInstall(host, str(entity["service"]), None))
            elif detector == "entity.account" and entity.get("user"):
                feature = next(iter(finding.get("contributions") or ()), {}).get("feature", "")
                kind = str(feature).removeprefix("account.")
                group = entity.get("group")
                self.learn_account(
                    AccountChange(host, kind, str(entity["user"]), str(group) if group else None)
                )
        if finding.get("pattern"):
            self.suppressed.add(str(finding["pattern"]))

    def state(self) -> dict[str, Any]:
        return {
            "hosts": self.hosts.dump(HostChanges.dump),
            "service_hosts": self.service_hosts.dump(lambda v: v[0]),
            "hosts_with_services": self.hosts_with_services,
            "suppressed": sorted(self.suppressed),
        }

    def load(self, state: Mapping[str, Any]) -> None:
        self.hosts.restore(need(state, "hosts", list), HostChanges.restore)
        self.service_hosts.restore(need(state, "service_hosts", list), lambda v: [int(v)])
        self.hosts_with_services = need(state, "hosts_with_services", int)
        self.suppressed = {str(k) for k in need(state, "suppressed", list)}
