"""Benchmark of the incident pages at volume: what an analyst and the national coordinator wait
for with 200,000 incidents and 2,000,000 alerts in PostgreSQL.

    python bench/incidents.py [--incidents 200000] [--alerts 2000000] [--repeat 20]
                              [--keep DIR] [--only NAME,...] [--json FILE]

A fresh PostgreSQL 15 on loopback (``qorgan.testing.Postgres``, fsync on; ``--keep DIR`` keeps
it there and reuses it on the next run with the same sizes), migrated, gets a national
coordinator (KZ-CERT), one large organisation (Almaty's akimat, about half the incidents and 60
analysts) and 80 others whose volumes fall off as a power law, with their analysts and assets.

The incidents (see :class:`Generator`) are created over the year before the load, more of them
on working days and hours; their KZ-CERT classes, severities and resolutions follow realistic
shares. Each is worked through the lifecycle with times drawn per incident (acknowledged after
a median of an hour, contained after hours, closed after days; false positives closed from
triage), so its status is where it had got to when loaded: most incidents older than a month
are closed, recent ones open, and a few stalled ones are long overdue. Deadlines are the
default ones in working time on the Kazakh calendar (``qorgan.incidents.clocks``). A fifth are
reported to KZ-CERT. Each has its timeline events, observables, and (some) tasks from the
built-in templates, notes and affected assets. Its alerts (``--alerts`` in all, about ten per
incident on average with a long tail, one incident with 5,000 and a few with 1,000-3,000) come
from the built-in rule pack of its class, on its hosts and accounts, between its start and its
acknowledgement, each a distinct document. Everything is written with ``COPY`` in chunks of
incidents, one transaction per chunk (the alert tables' triggers keep the inbox's tallies and
search copy); the trigram index is built once afterwards, then ``VACUUM ANALYZE``.

Then the real console runs as its own process (uvicorn, one worker, as ``bench/inbox.py`` runs
it) and two clients sign in through the pages (password and TOTP): an analyst of the large
organisation and a coordinator of KZ-CERT, each also with an API token. Each request is timed
from sending to the whole answer; every repetition varies the incident, filter or period, and
operations are interleaved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inbox import PASSWORD, Answer, Op, measure, postgres, sign_in, table  # sibling benchmark
from ingest import console, cpu_seconds, tail

SEED = 20261201
#: Incidents are created over this span before the load.
SPAN = timedelta(days=365)
#: Incidents, and alerts per incident, handled per transaction.
CHUNK = 5_000
#: Organisations besides the coordinator and the large one, and the large one's share.
OTHERS = 80
LARGE_SHARE = 0.5
REPORTED_SHARE = 0.2
#: Alerts of the few very large incidents (the first is the one the pages are timed on).
LARGE_INCIDENTS = (5_000, 3_000, 2_000, 1_500, 1_000)
BUILT_IN = Path(__file__).resolve().parents[1] / "src" / "qorgan" / "detection" / "rules"

CLASSES = (
    ("credential-attack", 30), ("malware-spam", 22), ("scanning", 14), ("network-attack", 10),
    ("unauthorised-access", 10), ("protection-bypass", 6), (None, 8),
)  # fmt: skip
SEVERITIES = ((1, 34), (2, 34), (3, 23), (4, 9))
RESOLUTIONS = (
    ("true-positive-impact", 22), ("true-positive-no-impact", 38), ("false-positive", 35),
    ("duplicate", 5),
)  # fmt: skip
TITLES = {
    "credential-attack": ("Password guessing against {host}", "Brute force on VPN accounts",
                          "Credential stuffing on the citizen portal", "Kerberoasting from {host}"),
    "malware-spam": ("Malware on {host}", "Phishing e-mail with a macro document",
                     "Ransomware precursor on {host}", "Spam relay from {host}"),
    "scanning": ("Port scan of the perimeter", "Web vulnerability scan of {host}",
                 "Internal network sweep from {host}"),
    "network-attack": ("DDoS on the e-services portal", "Exploitation attempt on {host}",
                       "Web shell upload to {host}"),
    "unauthorised-access": ("Unauthorised access to {host}", "Data export by {user}",
                            "Admin login from abroad on {host}"),
    "protection-bypass": ("Antivirus disabled on {host}", "Audit log cleared on {host}",
                          "Firewall rule added on {host}"),
    None: ("Suspicious activity on {host}", "Report from a citizen", "Anomaly on {host}"),
}  # fmt: skip
NOTES = (
    "Isolated **{host}** from the network; memory image taken.",
    "Contacted the owner of the account `{user}`: confirmed the sign-in was not theirs.",
    "Blocked {ip} at the perimeter firewall. Ticket to the ISP opened.",
    "Хост {host} отключён от сети, пароль учётной записи {user} сброшен.",
    "{host} желіден ажыратылды; {user} есептік жазбасының құпиясөзі ауыстырылды.",
)
NETWORKS = ("185.220", "45.95", "91.240", "10.12", "10.40")
ORG_WORDS = (
    "akimat", "ministry of health", "ministry of finance", "bank", "university", "hospital",
    "police department", "tax committee", "railways", "energy company", "telecom", "school board",
)  # fmt: skip
CITIES = (
    "Astana", "Shymkent", "Karaganda", "Aktobe", "Taraz", "Pavlodar", "Oskemen", "Semey",
    "Kostanay", "Kyzylorda", "Atyrau", "Oral", "Petropavl", "Aktau", "Turkistan", "Kokshetau",
    "Taldykorgan", "Ekibastuz", "Zhezkazgan", "Konaev",
)  # fmt: skip
SURNAMES = (
    "Nurlanov", "Seitkali", "Abenova", "Zhumabekov", "Kassymova", "Omarov", "Bekturova",
    "Akhmetov", "Iskakova", "Sarsenbayev", "Mukanova", "Ermekov", "Karimova", "Utegenov",
    "Suleimenova", "Ivanov", "Petrova", "Smirnov", "Kuznetsova", "Popov",
)  # fmt: skip


def _weighted(r: random.Random, pairs: Sequence[tuple[Any, int]]) -> Any:
    return r.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    level: str
    kz_cert: str | None


def load_rules() -> dict[str | None, list[Rule]]:
    """The built-in pack's rules by KZ-CERT class (with their levels); a class the pack does
    not cover gets made-up rules, so every incident has alerts of its class."""
    from qorgan.detection.classification import classify
    from qorgan.detection.plan import RuleMeta

    found: dict[str | None, list[Rule]] = {}
    for path in sorted(BUILT_IN.rglob("*.yml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(document, dict) or "title" not in document or "id" not in document:
                continue
            meta = RuleMeta(
                id=str(document["id"]),
                title=str(document["title"]),
                level=str(document.get("level") or "medium"),
                status=document.get("status"),
                tags=tuple(str(t) for t in document.get("tags") or ()),
                logsource=tuple(
                    (str(k), str(v)) for k, v in (document.get("logsource") or {}).items()
                ),
                path=str(path),
                attributes=tuple(
                    (k, document[k]) for k in ("kz_cert", "rsit", "criminal_code") if k in document
                ),
            )
            kz_cert = classify(meta).to_dict().get("kz_cert")
            found.setdefault(kz_cert, []).append(Rule(meta.id, meta.title, meta.level, kz_cert))
    for n, (kz_cert, _) in enumerate(CLASSES):
        if not found.get(kz_cert):
            found[kz_cert] = [
                Rule(
                    f"00000000-0000-4000-8000-{n:06d}{k:06d}",
                    f"Bench rule {n}.{k}",
                    "medium",
                    kz_cert,
                )
                for k in range(3)
            ]
    return found


# --------------------------------------------------------------------------- organisations


@dataclass
class Organisation:
    id: int
    name: str
    weight: float
    users: list[int]
    hosts: list[str]
    accounts: list[str]
    assets: list[tuple[int, str]]  # id, host name


@dataclass
class Loaded:
    large: int
    coordinator: int
    analyst_email: str
    analyst_totp: str
    coordinator_email: str
    coordinator_totp: str
    analyst_token: str
    coordinator_token: str
    end: str
    incidents: int = 0
    alerts: int = 0
    giant: int = 0
    seconds: float = 0.0
    analyse_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    reported: int = 0
    tables: dict[str, int] = field(default_factory=dict)


def _setup(url: str, r: random.Random) -> tuple[Loaded, list[Organisation]]:
    """Migrate; KZ-CERT, the large organisation and the others, their analysts (one password
    hash for all but the two who sign in) and assets; the two signed-in users and tokens."""
    import pyotp

    from qorgan.core import accounts, security
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.models import OrganisationKind, Role, User
    from qorgan.core.settings import get_settings
    from qorgan.incidents.models import Asset
    from qorgan.migrations import upgrade

    settings = get_settings(database_url=url)
    upgrade(settings)
    engine = make_engine(settings)
    digest = security.hash_password(PASSWORD)
    organisations: list[Organisation] = []
    try:
        with unit_of_work(session_factory(engine)) as session:
            cert = accounts.create_organisation(
                session=session, actor="bench", name="KZ-CERT", kind=OrganisationKind.cert
            )
            names = ["Almaty akimat"]
            while len(names) < OTHERS + 1:
                name = f"{r.choice(CITIES)} {r.choice(ORG_WORDS)}"
                if name not in names:
                    names.append(name)
            asset_id = 0
            for rank, name in enumerate(names):
                kind = OrganisationKind.bank if "bank" in name else OrganisationKind.akimat
                org = accounts.create_organisation(
                    session=session, actor="bench", name=name, kind=kind
                )
                large = rank == 0
                prefix = "alm" if large else f"o{rank:02d}"
                people = 60 if large else max(2, int(12 / (rank**0.5)))
                users = []
                for n in range(people):
                    user = User(
                        organisation_id=org.id,
                        email=f"analyst{n}@{prefix}.bench.kz",
                        display_name=f"{r.choice('ABDEGKMNRSTZ')}. {r.choice(SURNAMES)}",
                        role=Role.soc_analyst,
                        password_hash=digest,
                        language=r.choice(("kk", "ru", "ru", "en")),
                    )
                    session.add(user)
                    users.append(user)
                session.flush()
                hosts = [f"{prefix}-ws-{n:04d}" for n in range(600 if large else 40)]
                hosts += [f"{prefix}-srv-{n:03d}" for n in range(120 if large else 8)]
                accounts_ = [
                    f"{chr(97 + r.randrange(26))}.{r.choice(SURNAMES).lower()}{n}"
                    for n in range(3000 if large else 150)
                ]
                assets = []
                for host in r.sample(hosts, 300 if large else 20):
                    asset_id += 1
                    session.add(
                        Asset(
                            id=asset_id,
                            organisation_id=org.id,
                            name=host,
                            kind="server" if "srv" in host else "host",
                            owner=f"{r.choice(SURNAMES)}",
                            criticality=r.choice((1, 2, 2, 3, 4)),
                            critical_infrastructure=r.random() < 0.05,
                            names=[host, f"{host}.{prefix}.kz"],
                        )
                    )
                    assets.append((asset_id, host))
                organisations.append(
                    Organisation(
                        org.id,
                        name,
                        LARGE_SHARE if large else (1 - LARGE_SHARE) * (rank**-1.1),
                        [u.id for u in users],
                        hosts,
                        accounts_,
                        assets,
                    )
                )
            # The other organisations' weights sum to 1 - LARGE_SHARE.
            others = sum(o.weight for o in organisations[1:])
            for o in organisations[1:]:
                o.weight *= (1 - LARGE_SHARE) / others
            signed_in = []
            for org_id, email, role in (
                (organisations[0].id, "analyst@alm.bench.kz", Role.soc_analyst),
                (cert.id, "coordinator@cert.bench.kz", Role.cert_coordinator),
            ):
                user = accounts.create_user(
                    session=session,
                    actor="bench",
                    organisation_id=org_id,
                    email=email,
                    display_name="Bench " + role.value,
                    role=role,
                    password=PASSWORD,
                    language="en",
                )
                user.totp_secret = pyotp.random_base32()
                signed_in.append(user)
            organisations[0].users.append(signed_in[0].id)
            tokens = [
                accounts.issue_token(
                    session=session, user=signed_in[0], name="bench", scopes=["incidents:read"]
                ),
                accounts.issue_token(
                    session=session,
                    user=signed_in[1],
                    name="bench",
                    scopes=["incidents:read", "incidents:coordinate"],
                ),
            ]
            session.flush()
            loaded = Loaded(
                large=organisations[0].id,
                coordinator=cert.id,
                analyst_email=signed_in[0].email,
                analyst_totp=signed_in[0].totp_secret or "",
                coordinator_email=signed_in[1].email,
                coordinator_totp=signed_in[1].totp_secret or "",
                analyst_token=tokens[0],
                coordinator_token=tokens[1],
                end="",
            )
    finally:
        engine.dispose()
    return loaded, organisations


# --------------------------------------------------------------------------- incidents


def _lognormal(r: random.Random, median: timedelta, sigma: float) -> timedelta:
    return median * math.exp(r.gauss(0, sigma))


@dataclass
class Plan:
    """One incident as generated: what its rows are made from."""

    id: int
    org: Organisation
    created: datetime
    kz_cert: str | None
    severity: int
    alerts: int
    values: dict[str, Any] = field(default_factory=dict)


class Generator:
    """Incidents and everything hanging off them, as rows for ``COPY``."""

    def __init__(
        self,
        organisations: list[Organisation],
        rules: dict[str | None, list[Rule]],
        end: datetime,
        seed: int,
        coordinator: int,
    ) -> None:
        from qorgan.core.workdays import default_calendar
        from qorgan.incidents.task_templates import default_templates, for_class

        self.organisations = organisations
        self.rules = rules
        self.end = end
        self.r = random.Random(seed)
        self.coordinator = coordinator
        self.calendar = default_calendar()
        templates = default_templates()
        self.templates = {cls: for_class(cls, templates) for cls, _ in CLASSES if cls}
        self.alert_id = 0
        self.cumulative = []
        total = 0.0
        for org in organisations:
            total += org.weight
            self.cumulative.append(total)

    # -- the skeleton: when, whose, what, how many alerts

    def _moment(self) -> datetime:
        """A creation time in the span: more recent ones a little more often, working days and
        hours (Almaty, UTC+5) three times as often as nights and weekends."""
        r = self.r
        while True:
            at = self.end - SPAN * (r.random() ** 1.15)
            local = at + timedelta(hours=5)
            busy = local.weekday() < 5 and 9 <= local.hour < 19
            if busy or r.random() < 0.33:
                return at

    def plans(self, count: int, alerts: int) -> list[Plan]:
        r = self.r
        moments = sorted(self._moment() for _ in range(count))
        plans = []
        for n, created in enumerate(moments, start=1):
            org = self.organisations[
                min(
                    bisect(self.cumulative, r.random() * self.cumulative[-1]),
                    len(self.organisations) - 1,
                )
            ]
            plans.append(Plan(n, org, created, _weighted(r, CLASSES), _weighted(r, SEVERITIES), 0))
        # Alerts: a long-tailed number per incident (median 6, mean 10), a few very large
        # incidents of the large organisation (created 3 weeks ago and after), then scaled so
        # the total is exact.
        large = [
            p
            for p in plans
            if p.org is self.organisations[0] and p.created > self.end - timedelta(days=21)
        ]
        giants = r.sample(large, len(LARGE_INCIDENTS))
        for plan, size in zip(giants, LARGE_INCIDENTS, strict=True):
            plan.alerts = size
            plan.severity = 4
            plan.kz_cert = "malware-spam"
        rest = [p for p in plans if not p.alerts]
        budget = alerts - sum(LARGE_INCIDENTS)
        draws = [math.exp(r.gauss(math.log(10) - 0.5, 1.0)) for _ in rest]
        scale = (budget - len(rest)) / sum(draws)
        for plan, draw in zip(rest, draws, strict=True):
            plan.alerts = 1 + int(draw * scale + r.random())
        difference = alerts - sum(p.alerts for p in plans)
        step = 1 if difference > 0 else -1
        while difference:
            plan = r.choice(rest)
            if plan.alerts + step >= 1:
                plan.alerts += step
                difference -= step
        giants[0].values["giant"] = True
        return plans

    # -- one incident's life

    def _life(self, plan: Plan) -> dict[str, Any]:
        """Its moments and where it had got to at ``end``."""
        r = self.r
        end = self.end
        started = plan.created - min(timedelta(hours=r.expovariate(1 / 3)), timedelta(hours=48))
        resolution = _weighted(r, RESOLUTIONS)
        acknowledged = plan.created + _lognormal(r, timedelta(minutes=50), 1.1)
        steps: list[tuple[str, datetime]] = [("triage", acknowledged)]
        contained = None
        if resolution in ("false-positive", "duplicate"):
            steps.append(("closed", acknowledged + _lognormal(r, timedelta(hours=3), 1.0)))
        else:
            at = acknowledged + _lognormal(r, timedelta(hours=1), 0.8)
            steps.append(("containment", at))
            contained = at + _lognormal(r, timedelta(hours=9), 1.2)
            steps.append(("eradication", contained))
            at = contained + _lognormal(r, timedelta(hours=20), 1.0)
            steps.append(("recovery", at))
            at += _lognormal(r, timedelta(hours=30), 1.0)
            steps.append(("review", at))
            steps.append(("closed", at + _lognormal(r, timedelta(days=2), 0.9)))
        # A few stall where they are (the long-overdue ones of every list).
        if r.random() < 0.015:
            steps = steps[: r.randrange(0, len(steps))]
        reached = [(status, at) for status, at in steps if at <= end]
        status = reached[-1][0] if reached else "new"
        moments = dict(reached)
        closed = moments.get("closed")
        return {
            "started": started,
            "status": status,
            "resolution": resolution if closed else None,
            "acknowledged": acknowledged if reached else None,
            "contained": contained if contained and contained <= end else None,
            "closed": closed,
            "steps": reached,
        }

    def incident(self, plan: Plan) -> tuple[Any, ...]:
        from qorgan.incidents import clocks
        from qorgan.incidents.models import Incident

        r = self.r
        life = self._life(plan)
        plan.values.update(life)
        org = plan.org
        host = r.choice(org.hosts)
        user = r.choice(org.accounts)
        plan.values["host"], plan.values["user"] = host, user
        assignee = r.choice(org.users) if life["status"] != "new" or r.random() < 0.4 else None
        plan.values["assignee"] = assignee
        rules = self.rules[plan.kz_cert]
        plan.values["rules"] = r.sample(rules, min(len(rules), r.choice((1, 1, 1, 2, 3))))
        started = life["started"]
        cal = self.calendar
        dues = {
            measure: clocks.due_at(started, amount, unit, cal)
            for measure, (amount, unit) in clocks.DEFAULT_DEADLINES.items()
        }
        personal = r.random() < 0.05
        breach_due = clocks.due_at(plan.created, *clocks.BREACH_REPORT, cal) if personal else None
        breach_done = (
            plan.created + _lognormal(r, timedelta(hours=6), 0.8)
            if personal and life["status"] != "new"
            else None
        )
        if breach_done and breach_done > self.end:
            breach_done = None
        probe = Incident(
            status=life["status"],
            acknowledged_at=life["acknowledged"],
            contained_at=life["contained"],
            closed_at=life["closed"],
            acknowledge_due_at=dues["acknowledge"],
            contain_due_at=dues["contain"],
            close_due_at=dues["close"],
            breach_report_due_at=breach_due,
            breach_reported_at=breach_done,
        )
        clocks.next_due(probe)
        reported = r.random() < REPORTED_SHARE
        reported_at = plan.created + timedelta(minutes=r.expovariate(1 / 90)) if reported else None
        if reported_at and reported_at > self.end:
            reported_at = self.end
        plan.values["reported"] = reported
        title = r.choice(TITLES[plan.kz_cert]).format(host=host, user=user)
        if plan.alerts > 1:
            title += f" (+{plan.alerts - 1} alerts)"
        rule_ids = [rule.id for rule in plan.values["rules"]]
        last = max([plan.created, *(at for _, at in life["steps"])])
        return (
            plan.id, org.id, title[:300],
            f"{title}. Detected by {', '.join(rule.title for rule in plan.values['rules'])}.",
            plan.kz_cert, None, None, plan.severity, None, "amber", "amber", life["status"],
            life["resolution"], assignee, "[]", personal, "alerts", "[]", assignee, plan.created,
            last, started, life["acknowledged"], life["contained"], life["closed"],
            dues["acknowledge"], dues["contain"], dues["close"], breach_due, breach_done,
            probe.next_due_at, None, self.coordinator if reported else None, reported_at,
            orjson.dumps(rule_ids).decode(),
        )  # fmt: skip

    def events(self, plan: Plan) -> Iterator[tuple[Any, ...]]:
        v = plan.values
        actor = v["assignee"]
        yield (plan.id, plan.created, actor, "created", '{"origin": "alerts"}')
        if v["assignee"]:
            yield (
                plan.id,
                plan.created + timedelta(minutes=2),
                actor,
                "assigned",
                orjson.dumps({"from": None, "to": v["assignee"]}).decode(),
            )
        previous = "new"
        for status, at in v["steps"]:
            details = {"from": previous, "to": status}
            if status == "closed":
                details["resolution"] = v["resolution"]
            yield (plan.id, at, actor, "status", orjson.dumps(details).decode())
            previous = status
        if v["reported"]:
            yield (plan.id, plan.created + timedelta(minutes=30), actor, "reported", "{}")

    def tasks_and_notes(self, plan: Plan) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        r = self.r
        v = plan.values
        tasks: list[tuple[Any, ...]] = []
        notes: list[tuple[Any, ...]] = []
        template = self.templates.get(plan.kz_cert) if plan.kz_cert else None
        if template and r.random() < 0.35:
            passed = {status for status, _ in v["steps"]}
            for position, spec in enumerate(template.tasks, start=1):
                done = spec.phase in passed or v["status"] == "closed"
                tasks.append(
                    (plan.id, spec.phase, position, spec.title["en"], spec.description["en"][:2000],
                     "done" if done else "open", template.id, v["assignee"], plan.created,
                     plan.created + timedelta(hours=position) if done else None,
                     v["assignee"] if done else None)
                )  # fmt: skip
        for n in range(r.choice((0, 0, 0, 1, 1, 2, 3))):
            text = r.choice(NOTES).format(
                host=v["host"],
                user=v["user"],
                ip=f"185.220.{r.randrange(256)}.{r.randrange(1, 255)}",
            )
            notes.append(
                (plan.id, None, v["assignee"], plan.created + timedelta(hours=n + 1), text)
            )
        return tasks, notes

    # -- alerts

    def alerts(self, plan: Plan) -> Iterator[tuple[tuple[Any, ...], set[tuple[str, str]]]]:
        """The incident's alerts (rows of ``alerts``) and the observables each brings."""
        r = self.r
        v = plan.values
        org = plan.org
        hosts = [v["host"], *r.sample(org.hosts, min(len(org.hosts), r.choice((0, 0, 1, 2, 4))))]
        users = [v["user"], *r.sample(org.accounts, r.choice((0, 0, 1, 3)))]
        if plan.alerts > 500:  # a campaign: many hosts and accounts
            hosts += r.sample(org.hosts, min(len(org.hosts), 200))
            users += r.sample(org.accounts, min(len(org.accounts), 300))
        sources = [
            f"{r.choice(NETWORKS)}.{r.randrange(256)}.{r.randrange(1, 255)}"
            for _ in range(r.choice((1, 1, 2, 5)) + plan.alerts // 50)
        ]
        start = v["started"]
        span = max((v["acknowledged"] or plan.created) - start, timedelta(minutes=5))
        if plan.alerts > 100:
            span = max(span, timedelta(days=2))
        status = "acknowledged" if v["acknowledged"] else "new"
        for _ in range(plan.alerts):
            self.alert_id += 1
            rule = r.choice(v["rules"])
            host = r.choice(hosts)
            user = r.choice(users)
            source = r.choice(sources)
            at = start + span * r.random()
            level = (
                rule.level
                if rule.level in ("informational", "low", "medium", "high", "critical")
                else "medium"
            )
            body = {
                "rule": {"id": rule.id, "title": rule.title, "level": level, "tags": [],
                         "status": "stable", "path": "rules/builtin.yml"},
                "time": at.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "host": host,
                "source": {"path": f"/var/log/collect/{host}/Security.evtx",
                           "record": self.alert_id, "format": "evtx"},
                "event": {"EventID": 4625, "Computer": host, "TargetUserName": user,
                          "IpAddress": source, "LogonType": 3,
                          "ProcessId": r.randrange(400, 30000)},
                "classification": {"kz_cert": plan.kz_cert},
            }  # fmt: skip
            yield (
                (self.alert_id, org.id, f"{self.alert_id:064x}", rule.id, rule.title, level,
                 ("informational", "low", "medium", "high", "critical").index(level), plan.kz_cert,
                 host, user, source, None, at, at + timedelta(seconds=r.randrange(1, 90)), status,
                 v["assignee"], None, orjson.dumps(body).decode(),
                 f"{rule.title} {host} {user} {source}".lower()),
                {("ip", source), ("account", user)},
            )  # fmt: skip


INCIDENT_COLUMNS = (
    "id, organisation_id, title, description, kz_cert_class, rsit_class, rsit_type, severity, "
    "severity_reason, tlp, pap, status, resolution, assignee_id, tags, personal_data, origin, "
    "criminal_code, created_by_id, created_at, updated_at, started_at, acknowledged_at, "
    "contained_at, closed_at, acknowledge_due_at, contain_due_at, close_due_at, "
    "breach_report_due_at, breach_reported_at, next_due_at, merged_into_id, reported_to_id, "
    "reported_at, rule_ids"
)
ALERT_COLUMNS = (
    "id, organisation_id, fingerprint, rule_id, rule_title, level, severity, kz_cert_class, host, "
    "user_name, source_ip, destination_ip, time, received_at, status, assignee_id, hunt_id, body, "
    "search_text"
)
COPIES = {
    "incidents": INCIDENT_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "incident_alerts": "alert_id, incident_id, added_at, added_by_id",
    "incident_events": "incident_id, at, actor_id, kind, details",
    "incident_tasks": (
        "incident_id, phase, position, title, description, status, template_id, assignee_id, "
        "created_at, done_at, done_by_id"
    ),
    "incident_notes": "incident_id, task_id, author_id, created_at, text",
    "incident_observables": "incident_id, organisation_id, kind, value, origin, created_at",
    "incident_assets": "incident_id, asset_id",
}


def _copy(cursor: Any, table_: str, rows: Sequence[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table_} ({COPIES[table_]}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(url: str, incidents: int, alerts: int) -> Loaded:
    """Set up, generate and write everything; statistics gathered afterwards."""
    from qorgan.core.db import make_engine
    from qorgan.core.settings import get_settings

    r = random.Random(SEED)
    loaded, organisations = _setup(url, r)
    end = datetime.now(UTC).replace(microsecond=0)
    loaded.end = end.isoformat()
    generator = Generator(organisations, load_rules(), end, SEED + 1, loaded.coordinator)
    plans = generator.plans(incidents, alerts)
    began = time.perf_counter()
    engine = make_engine(get_settings(database_url=url))
    raw = engine.raw_connection()
    connection = raw.driver_connection
    counts: dict[str, int] = dict.fromkeys(COPIES, 0)
    spent: dict[str, float] = {}
    try:
        with connection.cursor() as cursor:
            # The trigram index is built once after the load (much faster than row by row).
            cursor.execute("DROP INDEX IF EXISTS ix_alerts_search_text")
            connection.commit()
            for first in range(0, len(plans), CHUNK):
                chunk = plans[first : first + CHUNK]
                rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in COPIES}
                for plan in chunk:
                    rows["incidents"].append(generator.incident(plan))
                    rows["incident_events"].extend(generator.events(plan))
                    tasks, notes = generator.tasks_and_notes(plan)
                    rows["incident_tasks"] += tasks
                    rows["incident_notes"] += notes
                    seen: set[tuple[str, str]] = set()
                    added = plan.created + timedelta(minutes=1)
                    for alert, observables in generator.alerts(plan):
                        rows["alerts"].append(alert)
                        rows["incident_alerts"].append(
                            (alert[0], plan.id, added, plan.values["assignee"])
                        )
                        if len(seen) < 1000:
                            seen |= observables
                    for kind, value in sorted(seen)[:1000]:
                        rows["incident_observables"].append(
                            (plan.id, plan.org.id, kind, value, "alert", added)
                        )
                    if plan.org.assets and generator.r.random() < 0.4:
                        for asset_id, _ in generator.r.sample(
                            plan.org.assets, generator.r.choice((1, 1, 2))
                        ):
                            rows["incident_assets"].append((plan.id, asset_id))
                    if plan.values.get("giant"):
                        loaded.giant = plan.id
                for name in COPIES:  # parents before children
                    copying = time.perf_counter()
                    _copy(cursor, name, rows[name])
                    counts[name] += len(rows[name])
                    spent[name] = spent.get(name, 0.0) + time.perf_counter() - copying
                copying = time.perf_counter()
                connection.commit()
                spent["commit"] = spent.get("commit", 0.0) + time.perf_counter() - copying
                done = first + len(chunk)
                elapsed = time.perf_counter() - began
                print(
                    f"  {done:,} incidents, {counts['alerts']:,} alerts in {elapsed:.0f} s "
                    f"({counts['alerts'] / elapsed:,.0f} alerts/s), load {os.getloadavg()[0]:.1f}; "
                    f"s in COPY: {', '.join(f'{k} {v:.0f}' for k, v in spent.items())}",
                    flush=True,
                )
            for name in ("incidents", "alerts", "assets"):
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
            began_index = time.perf_counter()
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute(
                "CREATE INDEX ix_alerts_search_text ON alerts_search "
                "USING gin (search_text gin_trgm_ops)"
            )
            connection.commit()
            print(f"  trigram index in {time.perf_counter() - began_index:.0f} s", flush=True)
        loaded.seconds = time.perf_counter() - began
        began = time.perf_counter()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            loaded.analyse_seconds = time.perf_counter() - began
            cursor.execute("SELECT status, count(*) FROM incidents GROUP BY status ORDER BY 1")
            loaded.statuses = {status: n for status, n in cursor.fetchall()}
            cursor.execute("SELECT count(*) FROM incidents WHERE reported_to_id IS NOT NULL")
            loaded.reported = cursor.fetchone()[0]
    finally:
        raw.close()
        engine.dispose()
    loaded.incidents, loaded.alerts, loaded.tables = incidents, counts["alerts"], counts
    print(
        f"  loaded in {loaded.seconds:.0f} s, analysed in {loaded.analyse_seconds:.0f} s; "
        f"statuses {loaded.statuses}; reported {loaded.reported:,}; rows {counts}",
        flush=True,
    )
    return loaded


# --------------------------------------------------------------------------- what to ask


@dataclass
class Samples:
    incidents: list[int]  # of the large organisation, drawn across sizes
    classes: list[str]
    words: list[str]
    months: list[str]


def samples(url: str, loaded: Loaded, repeat: int) -> Samples:
    import psycopg

    r = random.Random(SEED + 9)
    user, host, port, name = _parts(url)
    with psycopg.connect(f"host={host} port={port} user={user} dbname={name}") as connection:
        rows = connection.execute(
            "SELECT i.id, count(a.alert_id) FROM incidents i JOIN incident_alerts a "
            "ON a.incident_id = i.id WHERE i.organisation_id = %s AND i.id %% 97 = 0 "
            "GROUP BY i.id",
            (loaded.large,),
        ).fetchall()
    # A third small (under 10 alerts), a third middling, a third large (over 30).
    bands: list[list[int]] = [[], [], []]
    for incident_id, count in rows:
        bands[0 if count < 10 else 1 if count <= 30 else 2].append(incident_id)
    picked = [r.choice(bands[n % 3]) for n in range(repeat)]
    end = datetime.fromisoformat(loaded.end) + timedelta(hours=5)
    months = []
    year, month = end.year, end.month
    for _ in range(12):
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        months.append(f"{year}-{month:02d}")
    return Samples(
        incidents=picked,
        classes=[c for c, _ in CLASSES if c],
        words=["password", "malware", "scan", "ransomware", "vpn", "portal", "firewall"],
        months=months,
    )


_TOTAL = re.compile(r'data-total="(\d+)"')
Run = Callable[[int], Answer]


def _page(client: httpx.Client, path: str, params: list[tuple[str, str]] | None = None) -> Answer:
    response = client.get(path, params=params or [])
    found = (
        _TOTAL.search(response.text)
        if response.headers.get("content-type", "").startswith("text/html")
        else None
    )
    size = int(found.group(1)) if found else len(response.content)
    return Answer(response.status_code, size)


def _api(client: httpx.Client, path: str, params: list[tuple[str, str]] | None = None) -> Answer:
    response = client.get(path, params=params or [])
    if response.status_code != 200:
        return Answer(response.status_code, None)
    return Answer(200, response.json().get("total"))


def operations(
    analyst: httpx.Client,
    analyst_api: httpx.Client,
    coordinator: httpx.Client,
    coordinator_api: httpx.Client,
    s: Samples,
    giant: int,
) -> list[Op]:
    def pick(values: list[Any], n: int) -> Any:
        return values[n % len(values)]

    severities = ("critical", "high", "medium", "low")
    Params = Callable[[int], list[tuple[str, str]]]

    def page(client: httpx.Client, path: str, make: Params = lambda n: []) -> Run:
        return lambda n: _page(client, path, make(n))

    def api(client: httpx.Client, path: str, make: Params = lambda n: []) -> Run:
        return lambda n: _api(client, path, make(n))

    stats, report = "/api/v1/incidents/stats", "/incidents/reports/monthly"
    reported = [("scope", "reported")]
    ops: list[tuple[str, Run]] = [
        ("list: default (open, next deadline first)", page(analyst, "/incidents")),
        (
            "list: all, class + severity",
            page(
                analyst,
                "/incidents",
                lambda n: [
                    ("tab", "all"),
                    ("kz_cert", pick(s.classes, n)),
                    ("severity", pick(severities, n // 2)),
                ],
            ),
        ),
        ("list: overdue tab", page(analyst, "/incidents", lambda n: [("tab", "overdue")])),
        (
            "list: closed, newest, page 1-50",
            page(
                analyst,
                "/incidents",
                lambda n: [("tab", "closed"), ("order", "newest"), ("page", str(1 + n * 7 % 50))],
            ),
        ),
        (
            "list: search a title word",
            page(analyst, "/incidents", lambda n: [("tab", "all"), ("q", pick(s.words, n))]),
        ),
        ("api: list, default", api(analyst_api, "/api/v1/incidents")),
        ("incident page: various", lambda n: _page(analyst, f"/incidents/{pick(s.incidents, n)}")),
        (
            f"incident page: {LARGE_INCIDENTS[0]:,} alerts",
            page(analyst, f"/incidents/{giant}"),
        ),
        ("dashboard: 30 days", page(analyst, "/incidents/dashboard")),
        (
            "dashboard: 365 days",
            page(analyst, "/incidents/dashboard", lambda n: [("period", "365d")]),
        ),
        ("stats api: 30 days", api(analyst_api, stats)),
        ("stats api: 365 days", api(analyst_api, stats, lambda n: [("period", "365d")])),
        (
            "stats api: one month",
            api(analyst_api, stats, lambda n: [("period", pick(s.months, n))]),
        ),
        (
            "coordinator: dashboard, 30 days",
            page(coordinator, "/incidents/dashboard", lambda n: reported),
        ),
        (
            "coordinator: stats api, 365 days",
            api(coordinator_api, stats, lambda n: [*reported, ("period", "365d")]),
        ),
        ("coordinator: list, reported, open", page(coordinator, "/incidents", lambda n: reported)),
        (
            "report: monthly CSV",
            page(analyst, report, lambda n: [("month", pick(s.months, n)), ("format", "csv")]),
        ),
        (
            "report: monthly PDF",
            page(analyst, report, lambda n: [("month", pick(s.months, n)), ("format", "pdf")]),
        ),
    ]
    return [Op(name, run) for name, run in ops]


# --------------------------------------------------------------------------- running


def up_to_date(url: str) -> None:
    """Bring a kept database to the newest schema (new indexes), then refresh its statistics."""
    import psycopg

    from qorgan.core.settings import get_settings
    from qorgan.migrations import current, head, upgrade

    settings = get_settings(database_url=url)
    was = current(settings)
    if was == head():
        return
    began = time.perf_counter()
    upgrade(settings)
    user, host, port, name = _parts(url)
    with psycopg.connect(
        f"host={host} port={port} user={user} dbname={name}", autocommit=True
    ) as connection:
        connection.execute("VACUUM ANALYZE incidents")
    print(f"  migrated {was} -> {head()} in {time.perf_counter() - began:.0f} s", flush=True)


def _parts(url: str) -> tuple[str, ...]:
    found = re.match(r"postgresql\+psycopg://(\w+)@([\d.]+):(\d+)/(\w+)", url)
    assert found, url
    return found.groups()


def run(
    url: str, postmaster: int | None, reused: bool, keep: Path | None, args: argparse.Namespace
) -> dict[str, Any]:
    marker = keep / "postgresql" / "loaded.json" if keep else None
    if reused and marker is not None:
        saved = json.loads(marker.read_text())
        if (saved["incidents"], saved["alerts"]) != (args.incidents, args.alerts):
            raise SystemExit(
                f"{marker} holds another load ({saved['incidents']}, {saved['alerts']}); remove it"
            )
        loaded = Loaded(**saved)
        print(f"reusing the database kept in {marker.parent}", flush=True)
    else:
        print(f"loading {args.incidents:,} incidents and {args.alerts:,} alerts ...", flush=True)
        loaded = load(url, args.incidents, args.alerts)
        if marker is not None:
            marker.write_text(json.dumps(asdict(loaded), default=str))
    up_to_date(url)
    s = samples(url, loaded, args.repeat)
    workdir = Path(tempfile.mkdtemp(prefix="qorgan-incidents-console-"))
    try:
        with console(url, workdir) as (base, server):
            analyst = sign_in(base, loaded.analyst_email, loaded.analyst_totp)
            coordinator = sign_in(base, loaded.coordinator_email, loaded.coordinator_totp)
            analyst_api = httpx.Client(
                base_url=base,
                timeout=600,
                headers={"Authorization": f"Bearer {loaded.analyst_token}"},
            )
            coordinator_api = httpx.Client(
                base_url=base,
                timeout=600,
                headers={"Authorization": f"Bearer {loaded.coordinator_token}"},
            )
            with (
                closing(analyst),
                closing(coordinator),
                closing(analyst_api),
                closing(coordinator_api),
            ):
                ops = operations(
                    analyst, analyst_api, coordinator, coordinator_api, s, loaded.giant
                )
                if args.only:
                    ops = [op for op in ops if any(w in op.name for w in args.only.split(","))]
                for path in ("/incidents", "/incidents/dashboard", f"/incidents/{loaded.giant}"):
                    analyst.get(path)  # the first request of a process imports templates
                cpu = (
                    cpu_seconds(server.pid),
                    cpu_seconds(postmaster, children=True) if postmaster else 0,
                )
                began = time.perf_counter()
                measure(ops, args.repeat)
                seconds = time.perf_counter() - began
                cpu = (
                    cpu_seconds(server.pid) - cpu[0],
                    (cpu_seconds(postmaster, children=True) - cpu[1]) if postmaster else 0,
                )
            problems = [f"{op.name}: {op.errors[0]} ({len(op.errors)})" for op in ops if op.errors]
            if problems:
                print("  errors:", *problems, f"server log: {tail(workdir)}", sep="\n  ")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table("postgresql", ops))
    print(
        f"  {seconds:.0f} s of requests; CPU s: console {cpu[0]:.0f}, PostgreSQL {cpu[1]:.0f}; "
        f"load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    return {
        "loaded": asdict(loaded) | {"analyst_token": "-", "coordinator_token": "-"},
        "ops": [
            {
                "name": op.name,
                "n": len(op.latencies),
                "p50": op.percentile(50),
                "p95": op.percentile(95),
                "max": op.percentile(100),
                "matched": sorted(op.sizes)[len(op.sizes) // 2] if op.sizes else None,
                "errors": op.errors[:3],
            }
            for op in ops
        ],
        "seconds": seconds,
        "cpu": cpu,
    }


def sqlite_stats(url: str, loaded: Loaded, repeat: int) -> dict[str, Any]:
    """The same statistics on SQLite, in process (no HTTP): the incidents copied from the
    PostgreSQL database into a migrated SQLite file, then ``stats.period_stats`` and
    ``stats.current`` timed together, ``repeat`` times per case (the portable percentile: the
    two values around the rank, read with ORDER BY ... LIMIT 2 OFFSET k)."""
    import sqlite3

    import psycopg

    from qorgan.core.db import make_engine, session_factory
    from qorgan.core.settings import get_settings
    from qorgan.incidents import figures, stats
    from qorgan.incidents.listing import Scope
    from qorgan.migrations import upgrade

    folder = Path(tempfile.mkdtemp(prefix="qorgan-incidents-sqlite-"))
    try:
        target = f"sqlite:///{folder / 'qorgan.db'}"
        upgrade(get_settings(database_url=target))
        user, host, port, name = _parts(url)

        def cell(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            if isinstance(value, list | dict):
                return json.dumps(value)
            return value

        began = time.perf_counter()
        with (
            psycopg.connect(f"host={host} port={port} user={user} dbname={name}") as source,
            closing(sqlite3.connect(folder / "qorgan.db")) as sink,
        ):
            for table_ in ("organisations", "incidents"):
                columns = [
                    row[0]
                    for row in source.execute(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = %s ORDER BY ordinal_position",
                        (table_,),
                    )
                ]
                listed = ", ".join(columns)
                marks = ", ".join("?" * len(columns))
                sink.execute(f"DELETE FROM {table_}")
                with source.cursor(name=f"copy_{table_}") as cursor:
                    cursor.execute(f"SELECT {listed} FROM {table_} ORDER BY id")
                    while rows := cursor.fetchmany(20_000):
                        sink.executemany(
                            f"INSERT INTO {table_} ({listed}) VALUES ({marks})",
                            [tuple(cell(v) for v in row) for row in rows],
                        )
            sink.commit()
            sink.execute("ANALYZE")
        print(f"  SQLite: incidents copied in {time.perf_counter() - began:.0f} s", flush=True)
        engine = make_engine(get_settings(database_url=target))
        factory = session_factory(engine)
        end = datetime.fromisoformat(loaded.end)
        cases = [
            ("own", stats.Selection(loaded.large), "30d"),
            ("own", stats.Selection(loaded.large), "365d"),
            ("coordinator", stats.Selection(loaded.coordinator, Scope.reported), "30d"),
            ("coordinator", stats.Selection(loaded.coordinator, Scope.reported), "365d"),
        ]
        ops = [
            Op(f"sqlite stats: {who}, {label}", lambda n: Answer(200, None))
            for who, _, label in cases
        ]
        for _ in range(repeat):
            for op, (_who, selection, label) in zip(ops, cases, strict=True):
                with factory() as session:
                    began = time.perf_counter()
                    period = figures.parse_period(label, end, "Asia/Almaty")
                    found = stats.period_stats(session=session, selection=selection, period=period)
                    stats.current(session=session, selection=selection, now=end, limit=10)
                    op.latencies.append(time.perf_counter() - began)
                    op.sizes.append(found.total)
                    op.loads.append(os.getloadavg()[0])
        engine.dispose()
        print()
        print(table("in process", ops))
        return {
            "ops": [
                {"name": op.name, "p50": op.percentile(50), "p95": op.percentile(95)}
                | {"max": op.percentile(100), "matched": op.sizes[0]}
                for op in ops
            ]
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> int:
    import glob
    import importlib.util

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=200_000)
    parser.add_argument("--alerts", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=20, help="repetitions of each request")
    parser.add_argument("--keep", type=Path, help="keep the loaded database here, and reuse it")
    parser.add_argument("--only", help="only operations whose names hold one of these (a,b)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument(
        "--sqlite-stats",
        action="store_true",
        help="then time the statistics on a SQLite copy of the incidents (in process)",
    )
    args = parser.parse_args()
    if (
        args.incidents < 2_000
        or args.alerts < args.incidents + sum(LARGE_INCIDENTS)
        or args.repeat < 1
    ):
        parser.error(
            "--incidents at least 2,000, --alerts at least that plus 14,500, --repeat >= 1"
        )
    if (
        not glob.glob("/usr/lib/postgresql/*/bin/initdb")
        or importlib.util.find_spec("psycopg") is None
    ):
        print("skipped: PostgreSQL (Debian's postgresql package) and psycopg are needed")
        return 1
    keep = args.keep.resolve() if args.keep else None
    print(
        f"{os.cpu_count()} cores, shared by the client, the console and the database; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with postgres(keep) as (database, reused):
        result = run(database.url, database.postmaster, reused, keep, args)
        if args.sqlite_stats:
            loaded = Loaded(**{k: v for k, v in result["loaded"].items()})
            result["sqlite"] = sqlite_stats(database.url, loaded, args.repeat)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    return 1 if any(op["errors"] for op in result["ops"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
