"""Benchmark of access decisions: how many ``POST /api/v1/privacy/decisions`` a real ``qorgan
serve`` answers per second, and how fast, with 1,000,000 subjects and 10,000,000 consents in
PostgreSQL.

    python bench/decisions.py [--subjects 1000000] [--consents 10000000] [--clients 32]
                              [--rate 2000[,R...]] [--no-closed-loop] [--seconds 30]
                              [--warmup 10] [--workers 1] [--keep DIR] [--src DIR]
                              [--profile] [--json FILE]

**Data.** A fresh PostgreSQL 15 on loopback (``qorgan.testing.Postgres``, fsync on, as
``bench/inbox.py`` starts it; ``--keep DIR`` keeps it there and reuses it on the next run with
the same sizes), migrated, gets five organisations (health, social protection, a bank, Almaty's
akimat, internal affairs) with twelve information systems registered through the registry, each
with its categories, purposes and legal bases. ``--subjects`` subjects (valid IINs born
1940-2008, kept as the service keeps them: the keyed hash under the bench's hash key) are
written with ``COPY``; ``--consents`` consents with one ``INSERT ... SELECT`` over
``generate_series`` per block: how many consents a subject has follows a power law (most have
a few, a few have hundreds), each goes to a system by its weight, names one or two of its
purposes and its general or all of its categories, was given over the last five years (a
subject's consents lie far apart in the table, as consents given over years do) and carries a
signed receipt of the size the service writes (about 1.1 kB). About 10% are withdrawn (with
their withdrawal receipt), 10% have a term that has ended (some already marked expired), 1%
are fulfilled, the rest open-ended or running. The consents' indexes and foreign keys are built
after the rows, then ``VACUUM ANALYZE``.

**Requests.** Each decision has a request_id of its own. 70% ask about a (subject, system,
purpose) taken from a sample of the consents (``TABLESAMPLE``, so subjects with more consents
come more often), with a Zipf-weighted choice in that sample (a few subjects are asked about
very often); 30% a subject drawn uniformly from all of them and a system by its share of the
traffic. 85% of the first kind and 70% of the second claim consent; the others one of the
system's other bases (now and then one it is not registered for). A quarter ask for all the
system's categories, the rest for general data only.

**Measured.** The access log is emptied, the systems' tokens rotated, then ``qorgan serve``
(uvicorn, ``--workers`` processes, the in-process collector off) is started and awaited on
``/readyz``. A client in this process (asyncio over raw keep-alive HTTP/1.1 connections, so
that the client takes little of the two cores) then runs two phases, each ``--warmup`` seconds
unmeasured and ``--seconds`` measured: *closed loop*, ``--clients`` connections each sending
its next request as soon as the answer came (the most the server does), and *paced* (one phase
per ``--rate``), requests scheduled at that rate over the same connections, each timed from the
moment it was due (so a server falling behind shows as latency, not as fewer requests; what is
still unsent a second after the phase's end is counted as "not sent" and dropped). Latency is
from sending (or being due) to the whole answer. CPU is the server's processes, PostgreSQL's
(every process of the server: backends and background workers) and the client's, over the
warm-up too, so per decision it is divided by every decision answered. Afterwards the access
log must hold one row per answered request. ``--profile`` samples the server with py-spy
(``--gil``: the thread doing Python work) during the closed loop and prints where the time
goes. ``--src DIR`` serves another tree's code (``git archive <commit> src | tar -x -C DIR``,
then ``--src DIR/src``) against the same database, for a before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import bisect
import glob
import hashlib
import hmac
import importlib.util
import itertools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inbox import Database, postgres  # sibling benchmarks
from ingest import cpu_seconds, tail

SEED = 20261130
#: The bench's own keys (the server gets them too): subjects are stored by the keyed hash of
#: their IIN, so the loader and the server must hash alike.
HASH_KEY = "bench-decisions-hash-key-0123456789abcdef"
DATA_KEY = base64.urlsafe_b64encode(b"bench-decisions-data-key-32bytes").decode("ascii")
#: Consents were given over this span before the load.
YEARS = 5
#: Most consents one subject has (the power law's tail is cut here).
MOST_CONSENTS = 500
BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"
OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class SystemSpec:
    organisation: int
    name: str
    categories: tuple[str, ...]
    purposes: tuple[str, ...]
    bases: tuple[str, ...]
    consents: int  # share of the consents, in percent
    traffic: int  # share of the decisions asked


ORGANISATIONS = (
    ("Ministry of Health", "ministry"),
    ("Ministry of Labour and Social Protection", "ministry"),
    ("Qazaq Retail Bank", "bank"),
    ("Akimat of Almaty", "akimat"),
    ("Ministry of Internal Affairs", "ministry"),
)
SYSTEMS = (
    SystemSpec(0, "Electronic health passport", ("general", "special"),
               ("medical care", "prescriptions", "statistics"),
               ("consent", "legal_obligation", "vital_interests"), 20, 22),
    SystemSpec(0, "Polyclinic records", ("general", "special"),
               ("medical care", "appointments", "statistics"),
               ("consent", "legal_obligation"), 18, 18),
    SystemSpec(0, "Laboratory results", ("general", "special"), ("medical care", "research"),
               ("consent", "legal_obligation"), 8, 8),
    SystemSpec(1, "Social benefits register", ("general", "restricted"),
               ("benefit assignment", "means testing"),
               ("consent", "state_service", "legal_obligation"), 10, 10),
    SystemSpec(1, "Employment centre", ("general",), ("job matching", "training referral"),
               ("consent", "state_service"), 6, 5),
    SystemSpec(2, "Retail lending", ("general", "restricted", "biometric"),
               ("credit scoring", "identification", "debt collection"),
               ("consent", "contract", "legal_obligation"), 14, 15),
    SystemSpec(2, "Card issuing", ("general", "biometric"), ("identification", "card delivery"),
               ("consent", "contract"), 8, 7),
    SystemSpec(3, "School enrolment", ("general",), ("school admission", "meals subsidy"),
               ("consent", "state_service"), 5, 4),
    SystemSpec(3, "Onay transport card", ("general",),
               ("fare discounts", "card personalisation"), ("consent", "contract"), 6, 5),
    SystemSpec(3, "Smart-city video analytics", ("general", "biometric"),
               ("public safety", "search for missing persons"),
               ("consent", "legal_obligation", "law_enforcement"), 2, 3),
    SystemSpec(4, "Case management", ("general", "restricted", "special"),
               ("pre-trial investigation", "wanted persons"),
               ("law_enforcement", "legal_obligation"), 0, 3),
    SystemSpec(4, "Migration service", ("general", "biometric"), ("registration of residence",),
               ("consent", "state_service", "legal_obligation"), 3, 3),
)  # fmt: skip
DATA_ITEMS = (
    "surname", "first name", "patronymic", "date of birth", "IIN", "address", "phone",
    "e-mail", "document number", "place of work",
)  # fmt: skip
#: A signed receipt as ``qorgan.privacy.receipts.sign_receipt`` writes one (indented JSON,
#: about 1.1 kB), filled per row in SQL.
RECEIPT = (
    '{\n  "receipt": {\n    "schema_version": "qorgan-consent-receipt/1",\n'
    '    "record_id": "%s",\n    "event": "%s",\n    "event_time": "%s",\n'
    '    "subject_id": "%s",\n    "controller": {\n      "name": "%s",\n'
    '      "bin": "%s"\n    },\n    "processor": "%s",\n    "purposes": %s,\n'
    '    "legal_basis": "consent",\n    "data": %s,\n    "term_until": %s,\n'
    '    "third_party_transfer": false,\n    "cross_border_transfer": false,\n'
    '    "publication_in_public_sources": false,\n    "withdrawable": true,\n'
    '    "jurisdiction": "KZ",\n    "language": "ru"\n  },\n  "signature": {\n'
    '    "algorithm": "Ed25519",\n'
    '    "public_key": "hhVUuDVSAleRSKbihrSeFacZ3KmKcw7EFVe14TWJNm8=",\n'
    '    "key_fingerprint": "60c4b802e5d6b1519ffa9d631c5ef248",\n    "value": "%s"\n  }\n}\n'
)


def _settings(url: str, var_dir: Path | None = None) -> Any:
    from qorgan.core.settings import get_settings

    extra = {"var_dir": var_dir} if var_dir is not None else {}
    return get_settings(
        database_url=url, privacy_hash_key=HASH_KEY, privacy_data_keys=DATA_KEY, **extra
    )


def _bin(rng: random.Random) -> str:
    """A valid BIN of a resident organisation (check digit as qorgan.privacy.identifiers)."""
    from qorgan.privacy.identifiers import check_digit

    while True:
        first = f"{rng.randint(2, 20):02d}{rng.randint(1, 12):02d}40{rng.randrange(100_000):05d}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def subject_iins(count: int, seed: int = SEED) -> list[str]:
    """``count`` distinct valid IINs, the same for the same seed (subject id n+1 is the n-th):
    born 1940-2008, either sex, with their check digits."""
    from qorgan.privacy.identifiers import check_digit

    rng = random.Random(seed)
    first_day, days = date(1940, 1, 1).toordinal(), (date(2008, 12, 31) - date(1940, 1, 1)).days
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        born = date.fromordinal(first_day + rng.randrange(days))
        century = (3 if born.year < 2000 else 5) + rng.randrange(2)
        first = f"{born:%y%m%d}{century}{rng.randrange(10_000):04d}"
        digit = check_digit(first)
        if digit is None or first in seen:
            continue
        seen.add(first)
        out.append(first + str(digit))
    return out


def consent_counts(subjects: int, consents: int, seed: int = SEED) -> list[int]:
    """How many consents each subject has: a power law (most a few, a few hundreds, at most
    MOST_CONSENTS), scaled to ``consents`` in all."""
    rng = random.Random(seed + 1)
    raw = [min(MOST_CONSENTS, 1 + int(rng.random() ** -0.75)) for _ in range(subjects)]
    scale = consents / sum(raw)
    counts = [max(1, min(MOST_CONSENTS, round(n * scale))) for n in raw]
    difference = consents - sum(counts)
    while difference:
        k = rng.randrange(subjects)
        step = 1 if difference > 0 else -1
        if 1 <= counts[k] + step <= MOST_CONSENTS:
            counts[k] += step
            difference -= step
    return counts


# --------------------------------------------------------------------------- loading


@dataclass
class Loaded:
    subjects: int
    consents: int
    seconds: float = 0.0
    consent_seconds: float = 0.0
    index_seconds: float = 0.0
    analyse_seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    per_subject: dict[str, int] = field(default_factory=dict)
    table_bytes: int = 0


def _psycopg(url: str) -> Any:
    import psycopg

    rest = url.split("://", 1)[1]
    user, _, rest = rest.partition("@")
    hostport, _, name = rest.partition("/")
    host, _, port = hostport.partition(":")
    return psycopg.connect(f"host={host} port={port} user={user} dbname={name}")


def _register(url: str) -> None:
    """The organisations and their systems, through the registry (BINs checked, audited)."""
    from qorgan.core import accounts
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.core.models import OrganisationKind
    from qorgan.privacy import registry
    from qorgan.privacy.protection import protection
    from qorgan.privacy.registry import SystemIn

    settings = _settings(url)
    keys = protection(settings)
    rng = random.Random(SEED + 2)
    engine = make_engine(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            organisations = [
                accounts.create_organisation(
                    session=session, actor="bench", name=name, kind=OrganisationKind(kind)
                ).id
                for name, kind in ORGANISATIONS
            ]
            bins = [_bin(rng) for _ in ORGANISATIONS]
            operator = _bin(rng)
            for spec in SYSTEMS:
                registry.register(
                    session=session,
                    protection=keys,
                    organisation_id=organisations[spec.organisation],
                    system=SystemIn(
                        name=spec.name,
                        owner_name=ORGANISATIONS[spec.organisation][0],
                        owner_bin=bins[spec.organisation],
                        operator_name="National Information Technologies JSC",
                        operator_bin=operator,
                        responsible_person="Akhmetova D. K.",
                        contacts="+7 701 000 00 00, dpo@example.kz",
                        categories=list(spec.categories),
                        purposes=list(spec.purposes),
                        legal_bases=list(spec.bases),
                    ),
                    actor="bench",
                )
    finally:
        engine.dispose()


def _load_subjects(connection: Any, iins: list[str]) -> None:
    key = HASH_KEY.encode("utf-8")
    now = datetime.now(UTC)
    rng = random.Random(SEED + 3)
    with connection.cursor() as cursor:
        with cursor.copy("COPY privacy_subjects (id, iin_hash, created_at) FROM STDIN") as copy:
            for n, iin in enumerate(iins, 1):
                pseudonym = hmac.new(key, iin.encode("ascii"), hashlib.sha256).hexdigest()
                created = now - timedelta(seconds=rng.randrange(YEARS * 365 * 86400))
                copy.write_row((n, pseudonym, created))
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('privacy_subjects', 'id'), %s)", (len(iins),)
        )
    connection.commit()


#: One block of consents: the ``lo``-th to ``hi``-th consent of every subject that has so many
#: (so the heap holds everyone's first consents, then their second ones...). Random values are
#: drawn once per row in the inner query.
CONSENTS_SQL = """
INSERT INTO privacy_consents (
    subject_id, system_id, purposes, categories, data_items, term_until, third_party_transfer,
    cross_border_transfer, publication, withdrawal_restriction, status, given_at, ended_at,
    given_receipt, withdrawn_receipt, deletion_due, deletion_confirmed_at)
SELECT subject_id, system_id, purposes, categories, data_items, term_until, r_flags < 0.2,
    r_flags < 0.03, r_flags > 0.995,
    CASE WHEN r_flags BETWEEN 0.5 AND 0.52
        THEN 'the consent is a condition of a credit agreement in force' END,
    status, given_at, ended_at,
    format(%(receipt)s, gen_random_uuid(), 'given',
        to_char(given_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), pseudonym,
        owner_name, owner_bin, system_name, purposes, data_items,
        coalesce('"' || term_until || '"', 'null'), signature),
    CASE WHEN status = 'withdrawn' THEN format(%(receipt)s, gen_random_uuid(), 'withdrawn',
        to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), pseudonym,
        owner_name, owner_bin, system_name, purposes, data_items, 'null', signature) END,
    CASE WHEN ended_at IS NOT NULL THEN (ended_at + interval '30 days')::date END,
    CASE WHEN ended_at IS NOT NULL AND r_flags < 0.8
        THEN ended_at + interval '20 days' * r_flags END
FROM (
    SELECT c.subject_id, c.system_id, c.owner_name, c.owner_bin, c.system_name, c.given_at,
        c.r_flags,
        CASE WHEN c.r_two < 0.3 AND cardinality(c.all_purposes) > 1
            THEN json_build_array(c.all_purposes[c.p],
                                  c.all_purposes[1 + c.p %% cardinality(c.all_purposes)])
            ELSE json_build_array(c.all_purposes[c.p]) END AS purposes,
        CASE WHEN c.r_cat < 0.35 THEN to_json(c.all_categories)
            ELSE json_build_array(c.all_categories[1]) END AS categories,
        to_json((%(items)s::text[])[1 + c.subject_id %% 3:4 + floor(c.r_two * 6)::int])
            AS data_items,
        CASE
            WHEN c.r_state < 0.10 THEN 'withdrawn'
            WHEN c.r_state < 0.16 THEN 'expired'
            WHEN c.r_state < 0.17 THEN 'fulfilled'
            ELSE 'active' END AS status,
        CASE WHEN c.r_state < 0.17 THEN c.given_at + (now() - c.given_at) * c.r_end END
            AS ended_at,
        CASE
            WHEN c.r_state >= 0.10 AND c.r_state < 0.20
                THEN least((c.given_at + (now() - c.given_at) * c.r_end)::date,
                           current_date - 1)
            WHEN c.r_term < 0.5 THEN NULL
            ELSE current_date + 1 + floor(c.r_term * 1500)::int END AS term_until,
        md5(c.subject_id::text) || md5(c.subject_id::text || 'x') AS pseudonym,
        translate(encode(sha512(int8send(c.subject_id * 1000::bigint + c.g)), 'base64'),
                  E'\\n', '') AS signature
    FROM (
        SELECT raw.*, s.system_id, s.owner_name, s.owner_bin, s.system_name,
            s.purposes AS all_purposes, s.categories AS all_categories,
            1 + floor(raw.r_pick * cardinality(s.purposes))::int AS p
        FROM (
            SELECT p.subject_id, g, 1 + floor(random() * 100)::int AS slot,
                random() AS r_two, random() AS r_cat, random() AS r_state, random() AS r_end,
                random() AS r_term, random() AS r_flags, random() AS r_pick,
                now() - make_interval(years => %(years)s)
                    + make_interval(years => %(years)s) * ((g - random()) / p.n) AS given_at
            FROM bench_plan p, generate_series(%(lo)s, least(%(hi)s, p.n)) AS g
            WHERE p.n >= %(lo)s
            ORDER BY g, p.subject_id
        ) AS raw
        JOIN bench_slots s ON s.slot = raw.slot
    ) AS c
) AS consents
"""


def _slots(connection: Any) -> None:
    """bench_slots: 100 slots, each a system's by its share of the consents (one slot, 1%)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_slots (slot int PRIMARY KEY, system_id int, system_name text, "
            "owner_name text, owner_bin text, purposes text[], categories text[])"
        )
        systems = {
            name: (id_, owner, owner_bin, purposes, categories)
            for id_, name, owner, owner_bin, purposes, categories in cursor.execute(
                "SELECT id, name, owner_name, owner_bin, purposes::text, categories::text "
                "FROM privacy_systems"
            )
        }
        slot = 1
        for spec in SYSTEMS:
            id_, owner, owner_bin, purposes, categories = systems[spec.name]
            for _ in range(spec.consents):
                cursor.execute(
                    "INSERT INTO bench_slots VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        slot,
                        id_,
                        spec.name,
                        owner,
                        owner_bin,
                        json.loads(purposes),
                        json.loads(categories),
                    ),
                )
                slot += 1
        assert slot == 101, slot
    connection.commit()


def _consent_constraints(connection: Any) -> list[str]:
    """The statements that recreate the consents' secondary indexes and foreign keys, dropped
    here (loading into bare rows and building them once is many times faster)."""
    recreate: list[str] = []
    with connection.cursor() as cursor:
        for name, definition in cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'privacy_consents'::regclass AND contype = 'f'"
        ).fetchall():
            recreate.append(f"ALTER TABLE privacy_consents ADD CONSTRAINT {name} {definition}")
            cursor.execute(f"ALTER TABLE privacy_consents DROP CONSTRAINT {name}")
        for name, definition in cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'privacy_consents' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'privacy_consents'::regclass)"
        ).fetchall():
            recreate.insert(0, definition)
            cursor.execute(f"DROP INDEX {name}")
    connection.commit()
    return recreate


def load(url: str, subjects: int, consents: int) -> Loaded:
    from qorgan.migrations import upgrade

    loaded = Loaded(subjects, consents)
    began = time.perf_counter()
    upgrade(_settings(url))
    _register(url)
    iins = subject_iins(subjects)
    counts = consent_counts(subjects, consents)
    with closing_connection(url) as connection:
        _load_subjects(connection, iins)
        print(f"  {subjects:,} subjects in {time.perf_counter() - began:.0f} s", flush=True)
        _slots(connection)
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_plan (subject_id int PRIMARY KEY, n int)")
            with cursor.copy("COPY bench_plan (subject_id, n) FROM STDIN") as copy:
                for n, count in enumerate(counts, 1):
                    copy.write_row((n, count))
            cursor.execute("CREATE INDEX ON bench_plan (n)")
            cursor.execute("ANALYZE bench_plan")
        connection.commit()
        recreate = _consent_constraints(connection)
        # Blocks of about a tenth of the consents: everyone's first, then second... consents.
        by_round = Counter()
        for count in counts:
            by_round[count] += 1
        blocks: list[tuple[int, int]] = []
        remaining, lo, size = subjects, 1, 0
        for g in range(1, max(counts) + 1):
            size += remaining
            remaining -= by_round[g]
            if size >= consents // 10 or remaining == 0:
                blocks.append((lo, g))
                lo, size = g + 1, 0
            if remaining == 0:
                break
        started = time.perf_counter()
        done = 0
        with connection.cursor() as cursor:
            # The planner's JIT compiles each block's expressions for seconds: not worth it.
            cursor.execute("SET jit = off")
            cursor.execute("SELECT setseed(0.20261130)")
            for lo, hi in blocks:
                cursor.execute(
                    CONSENTS_SQL,
                    {
                        "receipt": RECEIPT,
                        "items": "{" + ",".join(f'"{i}"' for i in DATA_ITEMS) + "}",
                        "years": YEARS,
                        "lo": lo,
                        "hi": hi,
                    },
                )
                done += cursor.rowcount
                connection.commit()
                elapsed = time.perf_counter() - started
                print(
                    f"  consents {lo}-{hi} of each subject: {done:,} in {elapsed:.0f} s "
                    f"({done / elapsed:,.0f}/s), load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        loaded.consent_seconds = time.perf_counter() - started
        assert done == consents, (done, consents)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SET maintenance_work_mem = '1GB'")
            for statement in recreate:
                cursor.execute(statement)
                connection.commit()
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('privacy_consents', 'id'), "
                "(SELECT max(id) FROM privacy_consents))"
            )
            cursor.execute("DROP TABLE bench_plan, bench_slots")
        connection.commit()
        loaded.index_seconds = time.perf_counter() - started
        print(f"  indexes and foreign keys in {loaded.index_seconds:.0f} s", flush=True)
        started = time.perf_counter()
        connection.autocommit = True
        connection.execute("VACUUM ANALYZE")
        loaded.analyse_seconds = time.perf_counter() - started
        loaded.counts = dict(
            connection.execute(
                "SELECT status || CASE WHEN term_until < current_date THEN ' (term ended)' "
                "ELSE '' END, count(*) FROM privacy_consents GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        ranks = connection.execute(
            "SELECT percentile_disc(ARRAY[0.5, 0.9, 0.99, 0.999, 1.0]) WITHIN GROUP (ORDER BY n) "
            "FROM (SELECT count(*) AS n FROM privacy_consents GROUP BY subject_id) AS per"
        ).fetchone()[0]
        loaded.per_subject = dict(zip(("p50", "p90", "p99", "p99.9", "max"), ranks, strict=True))
        loaded.table_bytes = connection.execute(
            "SELECT pg_total_relation_size('privacy_consents')"
        ).fetchone()[0]
    loaded.seconds = time.perf_counter() - began
    print(
        f"  loaded in {loaded.seconds:.0f} s (consents {loaded.consent_seconds:.0f} s, indexes "
        f"{loaded.index_seconds:.0f} s, VACUUM ANALYZE {loaded.analyse_seconds:.0f} s); "
        f"consents table {loaded.table_bytes / 2**30:.1f} GiB; {loaded.counts}; "
        f"consents per subject {loaded.per_subject}",
        flush=True,
    )
    return loaded


@contextmanager
def closing_connection(url: str) -> Iterator[Any]:
    connection = _psycopg(url)
    try:
        yield connection
    finally:
        connection.close()


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Target:
    system: int  # index into SYSTEMS
    subject: int  # subject id
    purpose: str | None  # a consent's purpose, or None to draw one


class Requests:
    """The stream of decision requests (see the module's docstring), as JSON bodies, with the
    token of the system that asks."""

    def __init__(
        self, iins: list[str], sampled: list[Target], tokens: list[str], seed: int, tag: str
    ) -> None:
        self.iins, self.sampled, self.tokens, self.tag = iins, sampled, tokens, tag
        self.rng = random.Random(seed)
        # Zipf (s = 1) over the sample, in its (random) order: a few subjects come back often.
        self.cumulative = list(itertools.accumulate(1 / (k + 1) for k in range(len(sampled))))
        self.traffic = list(itertools.accumulate(spec.traffic for spec in SYSTEMS))
        self.serial = itertools.count()

    def next(self) -> tuple[int, bytes]:
        rng = self.rng
        if rng.random() < 0.7:
            index = bisect.bisect(self.cumulative, rng.random() * self.cumulative[-1])
            target = self.sampled[min(index, len(self.sampled) - 1)]
            consent_share = 0.85
        else:
            system = bisect.bisect(self.traffic, rng.random() * self.traffic[-1])
            target = Target(system, 1 + rng.randrange(len(self.iins)), None)
            consent_share = 0.7
        spec = SYSTEMS[target.system]
        purpose = target.purpose or rng.choice(spec.purposes)
        others = [b for b in spec.bases if b != "consent"]
        if "consent" in spec.bases and rng.random() < consent_share:
            basis = "consent"
        elif rng.random() < 0.05 or not others:
            basis = rng.choice(("contract", "public_data", "vital_interests"))
        else:
            basis = rng.choice(others)
        categories = list(spec.categories) if rng.random() < 0.25 else ["general"]
        body = {
            "subject_iin": self.iins[target.subject - 1],
            "categories": categories,
            "purpose": purpose,
            "legal_basis": basis,
            "official": f"staff {rng.randrange(1, 4000):04d}",
            "request_id": f"{self.tag}-{next(self.serial)}",
        }
        return target.system, orjson.dumps(body)


def sample_targets(url: str, seed: int, size: int = 100_000) -> list[Target]:
    """(subject, system, purpose) of consents drawn from the whole table, in random order."""
    with closing_connection(url) as connection:
        names = {
            id_: n
            for id_, name in connection.execute("SELECT id, name FROM privacy_systems")
            for n, spec in enumerate(SYSTEMS)
            if spec.name == name
        }
        total = connection.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'privacy_consents'"
        ).fetchone()[0]
        percent = min(100.0, 100.0 * size * 1.2 / max(total, 1))
        rows = connection.execute(
            f"SELECT subject_id, system_id, purposes->>0 FROM privacy_consents "
            f"TABLESAMPLE SYSTEM ({percent:.4f}) REPEATABLE ({seed % 1000}) LIMIT {size}"
        ).fetchall()
    targets = [Target(names[system], subject, purpose) for subject, system, purpose in rows]
    random.Random(seed).shuffle(targets)
    return targets


def prepare_run(url: str) -> list[str]:
    """Migrate (a kept database is brought to the newest schema), empty the access log, and
    give each system a new token (tokens are never written down)."""
    from qorgan.core.db import make_engine, session_factory, unit_of_work
    from qorgan.migrations import upgrade
    from qorgan.privacy import registry
    from qorgan.privacy.models import InformationSystem

    settings = _settings(url)
    upgrade(settings)
    with closing_connection(url) as connection:
        connection.autocommit = True
        connection.execute("TRUNCATE privacy_access_log")
        connection.execute("VACUUM ANALYZE privacy_access_log")
        ids = dict(connection.execute("SELECT name, id FROM privacy_systems").fetchall())
    engine = make_engine(settings)
    try:
        with unit_of_work(session_factory(engine)) as session:
            return [
                registry.rotate_token(
                    session=session,
                    system=session.get_one(InformationSystem, ids[spec.name]),
                    actor="bench",
                )
                for spec in SYSTEMS
            ]
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the server


@contextmanager
def serve(
    url: str, workdir: Path, workers: int, src: Path | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``qorgan serve`` on a free loopback port (the collector off), ready (``/readyz``);
    ``src``: run another source tree's (``git archive <commit> src``) for a before/after."""
    from qorgan.testing import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QORGAN_")}
    env |= {
        "QORGAN_DATABASE_URL": url,
        "QORGAN_VAR_DIR": str(workdir / "var"),
        "QORGAN_COLLECT_IN_SERVE": "false",
        "QORGAN_PRIVACY_HASH_KEY": HASH_KEY,
        "QORGAN_PRIVACY_DATA_KEYS": DATA_KEY,
    }
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    log = (workdir / "server.log").open("wb")
    command = [
        sys.executable, "-m", "qorgan.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"qorgan serve exited ({server.returncode}): {tail(workdir)}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"qorgan serve was not ready within 60 s: {tail(workdir)}")
            time.sleep(0.1)
        yield port, server
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


# --------------------------------------------------------------------------- the client


class Connection:
    """One keep-alive HTTP/1.1 connection that posts decisions (raw, to keep the client cheap:
    httpx's async client costs several times the server's parsing per request)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, token: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            b"POST /api/v1/privacy/decisions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + token.encode("ascii") + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode("ascii")
            + b"\r\n\r\n"
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {head!r}")
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    answered: int = 0  # every 200, warm-up included (the log must hold as many rows)
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    cpu: dict[str, float] = field(default_factory=dict)
    load: float = 0.0
    behind: int = 0  # paced: requests due but not sent when the phase ended (server too slow)

    def per_decision(self, seconds: float) -> float:
        """CPU milliseconds per answered decision (warm-up included on both sides)."""
        return seconds / self.answered * 1000 if self.answered else math.nan

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


async def _exchange(
    phase: Phase, connection: Connection, requests: Requests, tokens: list[str], measured: bool
) -> float:
    system, body = requests.next()
    began = time.perf_counter()
    try:
        status, answer = await connection.post(tokens[system], body)
    except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
        phase.errors[type(exc).__name__] += 1
        connection.close()
        connection.writer = None
        return began
    if status != 200:
        phase.errors[f"HTTP {status}: {answer[:120]!r}"] += 1
        return began
    phase.answered += 1
    if measured:
        found = orjson.loads(answer)
        phase.outcomes[f"{found['decision']}: {found['reason']}"] += 1
    return began


async def closed_loop(
    port: int, requests: Requests, tokens: list[str], clients: int, warmup: float, seconds: float
) -> Phase:
    """``clients`` connections, each sending its next request as soon as it has the answer."""
    phase = Phase(f"closed loop, {clients} connections")
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def client() -> None:
        connection = Connection(port)
        try:
            while (now := time.perf_counter()) < end:
                measured = now >= measure_from
                began = await _exchange(phase, connection, requests, tokens, measured)
                if measured:
                    phase.latencies.append(time.perf_counter() - began)
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(clients)))
    phase.seconds = seconds
    return phase


async def paced(
    port: int,
    requests: Requests,
    tokens: list[str],
    clients: int,
    rate: float,
    warmup: float,
    seconds: float,
) -> Phase:
    """Requests due at ``rate`` per second (evenly spaced), sent over ``clients`` connections;
    each timed from the moment it was due."""
    phase = Phase(f"paced at {rate:,.0f}/s, {clients} connections")
    queue: asyncio.Queue[float | None] = asyncio.Queue()
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds

    async def schedule() -> None:
        for n in itertools.count():
            due = start + n / rate
            if due >= end:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(due)
        for _ in range(clients):
            queue.put_nowait(None)

    async def client() -> None:
        connection = Connection(port)
        try:
            while (due := await queue.get()) is not None:
                if time.perf_counter() > end + 1:  # far behind: what is left is not sent
                    phase.behind = max(phase.behind, queue.qsize() + 1)
                    break
                measured = due >= measure_from
                await _exchange(phase, connection, requests, tokens, measured)
                if measured:
                    phase.latencies.append(time.perf_counter() - due)
        finally:
            connection.close()

    await asyncio.gather(schedule(), *(client() for _ in range(clients)))
    phase.seconds = seconds
    return phase


def _run_phase(make: Any, server: subprocess.Popen[bytes], database: Database) -> Phase:
    """Run one phase's coroutine (uvloop when installed), with the CPU each side used."""
    postmaster = database.postmaster
    before = (
        cpu_seconds(server.pid, children=True),
        cpu_seconds(postmaster, children=True) if postmaster else 0.0,
        time.process_time(),
    )
    try:
        import uvloop

        phase = uvloop.run(make())
    except ImportError:
        phase = asyncio.run(make())
    after = (
        cpu_seconds(server.pid, children=True),
        cpu_seconds(postmaster, children=True) if postmaster else 0.0,
        time.process_time(),
    )
    phase.cpu = {
        "server": after[0] - before[0],
        "postgres": after[1] - before[1],
        "client": after[2] - before[2],
    }
    phase.load = os.getloadavg()[0]
    return phase


def logged(url: str) -> int:
    with closing_connection(url) as connection:
        return connection.execute("SELECT count(*) FROM privacy_access_log").fetchone()[0]


# --------------------------------------------------------------------------- reporting

#: Frames where a sampled thread waits rather than works (py-spy --gil samples the thread that
#: holds the GIL, which may be about to let it go).
IDLE = ("Condition.wait", "wait (threading", "select (selectors", "EpollSelector.select")


def summarise(path: Path, top: int = 25) -> None:
    """Where the server's Python time went: the functions with most samples, on their own
    (self) and with what they call (total), from py-spy's raw output."""
    if not path.exists():
        print(f"  (no profile at {path})")
        return
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not count.isdigit() or not frames or frames[-1].startswith(IDLE):
            continue
        n = int(count)
        samples += n
        own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            total[name] += n
    print(f"  profile {path}: {samples:,} samples holding the GIL")
    print("  self:  " + "; ".join(f"{f} {c / samples:.0%}" for f, c in own.most_common(top)))
    print("  total: " + "; ".join(f"{f} {c / samples:.0%}" for f, c in total.most_common(top * 3)))


def _short(frame: str) -> str:
    """``function (path/to/module.py:12)`` -> ``function (module.py)``."""
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0]
    return f"{name} ({module})" if module else name


def table(phases: list[Phase], warmup: float) -> str:
    head = (
        "phase", "decisions", "seconds", "decisions/s", "p50 ms", "p95 ms", "p99 ms", "max ms",
        "CPU s server / pg / client", "CPU ms/decision server / pg", "errors", "not sent", "load",
    )  # fmt: skip
    rows = [head]
    for p in phases:
        rows.append(
            (
                p.name,
                f"{len(p.latencies):,}",
                f"{p.seconds:.0f} (+{warmup:.0f} warm-up)",
                f"{p.rate:,.0f}",
                f"{p.percentile(50):.1f}",
                f"{p.percentile(95):.1f}",
                f"{p.percentile(99):.1f}",
                f"{p.percentile(100):.1f}",
                f"{p.cpu['server']:.1f} / {p.cpu['postgres']:.1f} / {p.cpu['client']:.1f}",
                f"{p.per_decision(p.cpu['server']):.2f} / {p.per_decision(p.cpu['postgres']):.2f}",
                f"{sum(p.errors.values()):,}",
                f"{p.behind:,}",
                f"{p.load:.1f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------- running


def _marker(keep: Path | None) -> Path | None:
    return keep / "postgresql" / "loaded.json" if keep is not None else None


def run(database: Database, reused: bool, keep: Path | None, args: argparse.Namespace) -> dict:
    marker = _marker(keep)
    if reused and marker is not None:
        saved = json.loads(marker.read_text())
        if (saved["subjects"], saved["consents"]) != (args.subjects, args.consents):
            raise SystemExit(f"{marker} holds other sizes ({saved}); remove {keep}")
        loaded = Loaded(**saved)
        print(f"reusing the database kept in {marker.parent} (loaded in {loaded.seconds:.0f} s)")
    else:
        print(f"loading {args.subjects:,} subjects and {args.consents:,} consents ...", flush=True)
        loaded = load(database.url, args.subjects, args.consents)
        if marker is not None:
            marker.write_text(json.dumps(loaded.__dict__))
    began = time.perf_counter()
    iins = subject_iins(args.subjects)
    tokens = prepare_run(database.url)
    sampled = sample_targets(database.url, SEED + 5)
    print(
        f"requests: {len(sampled):,} sampled consents, IINs rebuilt, tokens rotated in "
        f"{time.perf_counter() - began:.0f} s; load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    tag = f"bench-{int(time.time())}"
    requests = Requests(iins, sampled, tokens, SEED + 6, tag)
    workdir = Path(tempfile.mkdtemp(prefix="qorgan-bench-decisions-"))
    phases: list[Phase] = []
    profile = OUT / "decisions-profile.txt"
    try:
        with serve(database.url, workdir, args.workers, args.src) as (port, server):
            spy = None
            if args.profile:
                profile.unlink(missing_ok=True)
                spy = subprocess.Popen(
                    [
                        *(str(BIN / "py-spy"), "record", "--pid", str(server.pid)),
                        *("--subprocesses", "--gil", "--nonblocking", "--rate", "200"),
                        *("--format", "raw", "--output", str(profile)),
                        *("--duration", str(int(args.warmup + args.seconds))),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            if not args.no_closed_loop:
                phases.append(
                    _run_phase(
                        lambda: closed_loop(
                            port, requests, tokens, args.clients, args.warmup, args.seconds
                        ),
                        server,
                        database,
                    )
                )
                report(phases[-1])
            if spy is not None:
                spy.wait(60)
                summarise(profile)
            for rate in args.rate:
                phases.append(
                    _run_phase(
                        lambda rate=rate: paced(
                            port, requests, tokens, args.clients, rate, args.warmup, args.seconds
                        ),
                        server,
                        database,
                    )
                )
                report(phases[-1])
            errors = sum(sum(p.errors.values()) for p in phases)
            if errors:
                print(f"  server log: {tail(workdir)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    answered = sum(p.answered for p in phases)
    rows = logged(database.url)
    print()
    print(
        f"{args.subjects:,} subjects, {args.consents:,} consents; {len(SYSTEMS)} systems; "
        f"qorgan serve with {args.workers} worker(s); latency: sent (or due) to answered"
    )
    print(table(phases, args.warmup))
    outcomes = sum((p.outcomes for p in phases), Counter())
    total = sum(outcomes.values())
    print(
        "outcomes: "
        + "; ".join(f"{k} {n / total:.1%}" for k, n in outcomes.most_common())
        + f" (of {total:,})"
    )
    print(f"access log: {rows:,} rows for {answered:,} answered decisions")
    return {
        "loaded": loaded.__dict__,
        "phases": [
            {
                "name": p.name,
                "decisions": len(p.latencies),
                "rate": p.rate,
                "p50": p.percentile(50),
                "p95": p.percentile(95),
                "p99": p.percentile(99),
                "max": p.percentile(100),
                "cpu": p.cpu,
                "answered": p.answered,
                "errors": dict(p.errors),
                "load": p.load,
                "behind": p.behind,
            }
            for p in phases
        ],
        "outcomes": dict(outcomes),
        "logged": rows,
        "answered": answered,
    }


def report(phase: Phase) -> None:
    cpu = phase.cpu
    print(
        f"  {phase.name}: {len(phase.latencies):,} in {phase.seconds:.0f} s, "
        f"{phase.rate:,.0f}/s, p50 {phase.percentile(50):.1f} ms, p95 "
        f"{phase.percentile(95):.1f} ms, p99 {phase.percentile(99):.1f} ms; CPU s: server "
        f"{cpu['server']:.1f}, postgres {cpu['postgres']:.1f}, client {cpu['client']:.1f} "
        f"({phase.per_decision(cpu['server']):.2f} / {phase.per_decision(cpu['postgres']):.2f} "
        f"ms a decision); errors {dict(phase.errors) or 0}; not sent {phase.behind}; "
        f"load {phase.load:.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=1_000_000)
    parser.add_argument("--consents", type=int, default=10_000_000)
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument(
        "--rate",
        type=lambda text: [float(r) for r in text.split(",") if float(r) > 0],
        default=[2000.0],
        help="paced phases' decisions/s, comma-separated (0: none)",
    )
    parser.add_argument("--no-closed-loop", action="store_true", help="only the paced phases")
    parser.add_argument("--seconds", type=float, default=30, help="measured, per phase")
    parser.add_argument("--warmup", type=float, default=10, help="unmeasured, before each")
    parser.add_argument("--workers", type=int, default=1, help="qorgan serve --workers")
    parser.add_argument("--keep", type=Path, help="keep the loaded database here, and reuse it")
    parser.add_argument(
        "--src", type=Path, help="serve this source tree's code (git archive <commit> src)"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy on the closed loop")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    if args.subjects < 1_000 or args.consents < args.subjects or args.clients < 1:
        parser.error("--subjects at least 1,000, --consents at least that, --clients >= 1")
    if (
        not glob.glob("/usr/lib/postgresql/*/bin/initdb")
        or importlib.util.find_spec("psycopg") is None
    ):
        print("skipped: PostgreSQL (Debian's postgresql package) and psycopg are needed")
        return 1
    keep = args.keep.resolve() if args.keep else None
    OUT.mkdir(exist_ok=True)
    print(
        f"{os.cpu_count()} cores, shared by the client, the server and PostgreSQL; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    with postgres(keep) as (database, reused):
        result = run(database, reused, keep, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    failed = result["logged"] != result["answered"] or any(p["errors"] for p in result["phases"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
