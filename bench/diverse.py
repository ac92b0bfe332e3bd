"""A realistic-diversity input for ``bench/hunt.py``: the EVTX attack samples as JSON lines,
multiplied into copies that repeat no whole record.

    python bench/diverse.py BASE.jsonl TARGET.jsonl [--events 2000000] [--seed 12]

Each copy of the base records gets, consistently within the copy (a parent's GUID is its
child's parent GUID), values drawn afresh:

- process GUIDs and logon GUIDs; process and thread ids; logon ids; record numbers; times
  (each copy shifted by its own offset, the order inside it kept);
- host names (a pool of 600) and ordinary user names (a pool of 6,000), wherever they occur:
  ``Computer``, ``User``, ``C:\\Users\\<name>\\...``, command lines; machine accounts keep
  their ``$``, domains their suffix;
- the domain part of ``S-1-5-21-...`` SIDs (the RID that rules read, ``-500``, stays);
- random-looking names under ``\\Temp\\`` and ``\\tmp\\`` (digits and hex letters redrawn, the
  extension and the folder kept), and process ids quoted in command lines.

What rules look at keeps its shape: well-known accounts (SYSTEM, Administrator, LOCAL SERVICE,
...), well-known logon ids (0x3e7 ...), system paths, image names, hashes, provider GUIDs,
CLSIDs and every field not named here stay as recorded. ``bench/hunt.py`` checks that the
alerts of sampled copies equal the original's, rule by rule and record by record.

Copies are rendered from templates (each base record dumped once with its variable values
marked), so 2,000,000 events take well under a minute; the output is deterministic for a seed.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

#: Bumped when the generated input changes, so that cached files are not reused.
VERSION = 1

HOSTS = 600
USERS = 6_000

GUID_FIELDS = frozenset(
    {
        "ProcessGuid",
        "ParentProcessGuid",
        "SourceProcessGuid",
        "SourceProcessGUID",
        "TargetProcessGuid",
        "TargetProcessGUID",
        "LogonGuid",
        "TargetLogonGuid",
    }
)
PID_FIELDS = frozenset(
    {
        "ProcessId",
        "ProcessID",
        "ParentProcessId",
        "SourceProcessId",
        "TargetProcessId",
        "NewProcessId",
        "CallerProcessId",
        "processId",
        "ThreadID",
        "SourceThreadId",
        "NewThreadId",
    }
)
LOGON_FIELDS = frozenset({"LogonId", "SubjectLogonId", "TargetLogonId", "TargetLinkedLogonId"})
TIME_FIELDS = frozenset({"SystemTime", "UtcTime", "CreationUtcTime", "PreviousCreationUtcTime"})
USER_FIELDS = frozenset(
    {
        "User",
        "SubjectUserName",
        "TargetUserName",
        "AccountName",
        "SamAccountName",
        "ParentUser",
        "SourceUser",
        "TargetUser",
        "SourceUserName",
        "OldTargetUserName",
        "NewTargetUserName",
        "username",
        "Detection User",
        "Remediation User",
    }
)
#: Fields left exactly as recorded (hashes, provider identity, rule-visible constants).
KEEP_FIELDS = frozenset({"Hashes", "Hash", "Name", "Guid", "Channel", "Keywords", "#text"})

#: Accounts and words rules name, or too generic to be a person: never replaced.
WELL_KNOWN = frozenset(
    s.lower()
    for s in (
        "SYSTEM",
        "LOCAL SERVICE",
        "NETWORK SERVICE",
        "LocalSystem",
        "Administrator",
        "Administrators",
        "ANONYMOUS LOGON",
        "Guest",
        "DefaultAccount",
        "krbtgt",
        "DefaultAppPool",
        "Users",
        "Remote Desktop Users",
        "Public",
        "Default",
        "All Users",
        "admin",
        "normal",
        "backdoor",
        "win10",
        "sshd_server",
        "user",
        "names",
        "defau1t",
        "dwm-1",
        "-",
        "",
    )
)
KEEP_LOGON_IDS = 0x400  # 0x3e7 SYSTEM, 0x3e4 NETWORK SERVICE, 0x3e5 LOCAL SERVICE, ...
KEEP_PIDS = 4  # the Idle and System processes

#: Given names and family names that user names are made of (split at spaces).
_FIRST = """aigerim aibek alibek almas arman asel askar azamat bauyrzhan dana daniyar dariga diana
dina erlan gulnara kairat kamila madina marat nurlan olga roman saule serik timur yerlan zhanna
alex anna david elena ivan james john laura maria mark michael natalia paul peter sarah sergey
tatiana victor yulia"""
_LAST = """abenov akhmetov baimukhamedov dzhaksybekov ermekov ibraimov iskakov kassymov kim
mukhametov nurpeisov omarov rakhimov sadykov seitkali smagulov suleimenov tulegenov utegenov
zhakupov ivanov petrov smirnov popov volkov brown clark evans green harris jones lewis miller
moore smith taylor walker white wilson"""

_SID = re.compile(r"S-1-5-21-\d+-\d+-\d+")
_TEMP = re.compile(r"(?i)(\\(?:temp|tmp)\\)([^\\\s\"',;|]+)")
_NUMBER = re.compile(r"(?<!\S)\d{3,5}(?!\S)")
_HEX = re.compile(r"[0-9a-f]+")
_ORDINARY = re.compile(r"[A-Za-z][\w-]{2,}")
#: Random-looking runs in temporary names: tmpXXXX, ~DFXXXX, hex ids and GUIDs.
_RANDOM = re.compile(
    r"(?<=^~DF)[0-9A-F]{6,}|(?<=^tmp)[0-9A-Fa-f]{4,}"
    r"|(?<![\w~])[0-9A-Fa-f]{8,}(?:-[0-9A-Fa-f]{4,12}){0,4}"
)
_USERS_DIR = re.compile(r"(?i)\\Users\\([^\\\s\"]+)\\")


def user_pool(rng: random.Random) -> list[str]:
    shapes = (
        lambda f, la, n: f"{f[0]}{la}",
        lambda f, la, n: f"{f}.{la}",
        lambda f, la, n: f"{f}{la[0]}{n}",
        lambda f, la, n: f"{f[0]}.{la}{n}",
        lambda f, la, n: f"a-{f[0]}{la}",
        lambda f, la, n: f"svc-{la}{n}",
    )
    first, last = _FIRST.split(), _LAST.split()
    names: set[str] = set()
    while len(names) < USERS:
        shape = rng.choices(shapes, weights=(30, 30, 15, 15, 7, 3))[0]
        names.add(shape(rng.choice(first), rng.choice(last), rng.randrange(1, 100)))
    return sorted(names)


def host_pool(rng: random.Random) -> list[str]:
    sites = ("ALA", "AST", "SHY", "KRG", "AKT", "ATY", "PVL", "UKK")
    kinds = ("WS", "WS", "WS", "LT", "LT", "SRV", "DC", "SQL", "FS")
    names: set[str] = set()
    while len(names) < HOSTS:
        names.add(f"{rng.choice(sites)}-{rng.choice(kinds)}{rng.randrange(1, 10_000):04d}")
    return sorted(names)


class Template:
    """The base records with their variable values marked, and the table of those values."""

    def __init__(self, docs: list[dict], names: dict[str, str]) -> None:
        #: (kind, original) of every marked value; a copy draws one replacement for each.
        self.tokens: list[tuple[str, object]] = []
        self._index: dict[tuple[str, object], int] = {}
        #: name (lower case) -> "host" or "user"; matched whole, case-insensitively.
        self.names = names
        alternatives = sorted(names, key=len, reverse=True)
        self._name = re.compile(
            r"(?i)(?<![\w-])(" + "|".join(map(re.escape, alternatives)) + r")(?![\w-])"
        )
        self.pids: set[int] = set()
        self.lines: list[list[bytes | int]] = [self._template(doc) for doc in docs]

    def _token(self, kind: str, original: object) -> str:
        key = (kind, original)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.tokens)
            self.tokens.append(key)
        return f"\x01{index}\x01"

    def _number(self, kind: str, original: int) -> str:
        return f"\x02{self._token(kind, original)[1:-1]}\x02"

    def _template(self, doc: dict) -> list[bytes | int]:
        marked = self._walk(doc, "")
        raw = orjson.dumps(marked)
        parts: list[bytes | int] = []
        for i, piece in enumerate(re.split(rb'"\\u0002(\d+)\\u0002"|\\u0001(\d+)\\u0001', raw)):
            if i % 3 == 0:
                parts.append(piece)
            elif piece is not None:
                parts.append(int(piece))
        return parts

    def _walk(self, value: object, key: str) -> object:
        if isinstance(value, dict):
            return {k: self._walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v, key) for v in value]
        if key in KEEP_FIELDS or value is None or isinstance(value, bool):
            return value
        if key == "EventRecordID" and isinstance(value, int):
            return self._number("record", value)
        if key in PID_FIELDS:
            return self._pid(value)
        if key in GUID_FIELDS and isinstance(value, str) and len(value) >= 36:
            return self._token("guid", value)
        if key in LOGON_FIELDS and isinstance(value, str) and value.startswith("0x"):
            if int(value, 16) < KEEP_LOGON_IDS:
                return value
            return self._token("logon", value)
        if key in TIME_FIELDS and isinstance(value, str) and value[:2] in ("19", "20"):
            return self._token("time", value)
        if isinstance(value, str):
            return self._text(value, key)
        return value

    def _pid(self, value: object) -> object:
        if isinstance(value, int) and value > KEEP_PIDS:
            self.pids.add(value)
            return self._number("pid", value)
        if isinstance(value, str) and value.isdigit() and int(value) > KEEP_PIDS:
            self.pids.add(int(value))
            return self._token("pid", int(value))
        if isinstance(value, str) and value.startswith("0x") and int(value, 16) > KEEP_PIDS:
            self.pids.add(int(value, 16))
            return self._token("pidhex", value)
        return value

    def _text(self, value: str, key: str) -> str:
        value = self._name.sub(lambda m: self._token("name", m.group(1)), value)
        value = _SID.sub(lambda m: self._token("sid", m.group(0)), value)
        value = _TEMP.sub(lambda m: m.group(1) + self._temp(m.group(2)), value)
        if "CommandLine" in key:
            value = _NUMBER.sub(
                lambda m: (
                    self._token("pid", int(m.group(0)))
                    if int(m.group(0)) in self.pids
                    else m.group(0)
                ),
                value,
            )
        return value

    def _temp(self, segment: str) -> str:
        if "\x01" in segment:
            return segment
        return _RANDOM.sub(
            lambda m: (
                self._token("temp", m.group(0))
                if sum(c.isdigit() for c in m.group(0)) >= 2
                else m.group(0)
            ),
            segment,
        )


def collect_names(docs: list[dict]) -> dict[str, str]:
    """Host and ordinary user names of the base records (lower case -> kind)."""
    names: dict[str, str] = {}

    def user(value: str) -> None:
        value = value.rsplit("\\", 1)[-1].split("@", 1)[0]
        lower = value.lower()
        if (
            lower in WELL_KNOWN
            or lower.startswith("admin")  # rules read "Admin*" user names
            or _HEX.fullmatch(lower)  # RIDs printed in hex, 000001f4 is -500
            or not _ORDINARY.fullmatch(value)
        ):
            return
        names.setdefault(lower, "user")

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str):
            if key in USER_FIELDS:
                user(value)
            for match in _USERS_DIR.finditer(value):
                user(match.group(1))

    for doc in docs:
        computer = doc["Event"]["System"].get("Computer")
        if isinstance(computer, str) and computer:
            names[computer.split(".", 1)[0].lower()] = "host"
        walk(doc["Event"], "")
    return names


class Copy:
    """The replacements of one copy, drawn from its own seeded generator."""

    def __init__(self, template: Template, rng: random.Random, hosts: list[str], users: list[str]):
        self.rng = rng
        self.hosts = hosts
        self.users = users
        self.names: dict[str, str] = {}
        self.shift = timedelta(
            days=rng.randrange(300, 2_500), seconds=rng.randrange(86_400), microseconds=0
        )
        self.record_offset = rng.randrange(1_000, 50_000_000)
        self.seen: set[object] = set()
        draw = {
            "record": self.record,
            "pid": self.pid,
            "pidhex": self.pidhex,
            "guid": self.guid,
            "logon": self.logon,
            "time": self.time,
            "name": self.name,
            "sid": self.sid,
            "temp": self.temp,
        }
        self.values: list[bytes] = []
        self.pids: dict[int, int] = {}
        for kind, original in template.tokens:
            self.values.append(draw[kind](original, template).encode())

    def fresh(self, make) -> str:
        while True:
            value = make()
            if value not in self.seen:
                self.seen.add(value)
                return value

    def record(self, original: int, _t: Template) -> str:
        return str(original + self.record_offset)

    def _pid(self, original: int) -> int:
        pid = self.pids.get(original)
        if pid is None:
            pid = self.pids[original] = int(
                self.fresh(lambda: str(4 * self.rng.randrange(2, 16_384)))
            )
        return pid

    def pid(self, original: int, _t: Template) -> str:
        return str(self._pid(original))

    def pidhex(self, original: str, _t: Template) -> str:
        text = hex(self._pid(int(original, 16)))
        return text.upper().replace("0X", "0x") if original[2:].isupper() else text

    def guid(self, original: str, _t: Template) -> str:
        h = f"{self.rng.getrandbits(128):032X}"
        new = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if original.islower():
            new = new.lower()
        return "{" + new + "}" if original.startswith("{") else new

    def logon(self, original: str, _t: Template) -> str:
        return self.fresh(lambda: hex(self.rng.randrange(0x10000, 0x40000000)))

    def time(self, original: str, _t: Template) -> str:
        iso = original.endswith("Z")
        text = original[:-1] if iso else original
        stamp = datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC) + self.shift
        digits = len(text.rpartition(".")[2]) if "." in text else 0
        out = stamp.strftime("%Y-%m-%dT%H:%M:%S" if "T" in text else "%Y-%m-%d %H:%M:%S")
        if digits:
            out += "." + f"{stamp.microsecond:06d}"[:digits].ljust(digits, "0")
        return out + ("Z" if iso else "")

    def name(self, original: str, template: Template) -> str:
        key = original.lower()
        new = self.names.get(key)
        if new is None:
            pool = self.hosts if template.names[key] == "host" else self.users
            new = self.names[key] = self.fresh(lambda: self.rng.choice(pool))
        if original.isupper():
            return new.upper()
        if original.islower():
            return new.lower()
        return new

    def sid(self, original: str, _t: Template) -> str:
        return "S-1-5-21-" + "-".join(str(self.rng.randrange(10**9, 4 * 10**9)) for _ in range(3))

    def temp(self, original: str, _t: Template) -> str:
        if any(c in "abcdef" for c in original):
            alphabet = "0123456789abcdef"
        elif any(c in "ABCDEF" for c in original):
            alphabet = "0123456789ABCDEF"
        else:
            alphabet = "0123456789"
        return "".join(c if c == "-" else self.rng.choice(alphabet) for c in original)


def generate(base: Path, target: Path, events: int, seed: int) -> tuple[int, int]:
    """Write at least ``events`` events in whole copies; (copies, events per copy)."""
    docs = [orjson.loads(line) for line in base.read_bytes().splitlines() if line.strip()]
    template = Template(docs, collect_names(docs))
    rng = random.Random(f"qorgan-diverse:{seed}")
    hosts, users = host_pool(rng), user_pool(rng)
    copies = -(-events // len(docs))
    partial = target.with_name(target.name + ".partial")
    with partial.open("wb") as out:
        for number in range(copies):
            out.writelines(
                render(template, Copy(template, random.Random(f"{seed}:{number}"), hosts, users))
            )
    partial.replace(target)
    return copies, len(docs)


def render(template: Template, copy: Copy) -> Iterator[bytes]:
    values = copy.values
    for parts in template.lines:
        yield b"".join([p if p.__class__ is bytes else values[p] for p in parts]) + b"\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    copies, per_copy = generate(args.base, args.target, args.events, args.seed)
    print(f"{copies} copies of {per_copy:,} records: {copies * per_copy:,} events", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
