"""The legal-referral package: what the CERT hands law enforcement about an incident that may be
a crime, in a form whose integrity anyone can check later with ``qorgan incidents verify-export``.

A package is one ZIP file, written in a fixed order with fixed timestamps so the same input gives
the same bytes (Ed25519 signatures are deterministic, so the whole file repeats):

* ``summary.pdf`` -- the summary in Kazakh, Russian or English (DejaVu Sans, embedded, carries
  every Kazakh letter), times in Asia/Almaty;
* ``timeline.csv``, ``observables.csv``, ``custody.csv`` -- the same data, full length, for
  machines (UTF-8 with a BOM so spreadsheet programs read Cyrillic; a cell beginning with
  ``= + - @``, tab or CR gets a leading apostrophe, because observables come from attackers and a
  spreadsheet would run them as formulas -- the PDF shows the values unaltered);
* ``evidence/<sha256>-<safe name>`` -- each evidence file, streamed from the store and hashed while
  copied: a file that no longer matches its recorded SHA-256 stops the export;
* ``manifest.json`` -- format, incident, who and when, language, every member's path, size and
  SHA-256, and the signer's public key.

The seal: the ZIP's end-of-central-directory comment is exactly
``QORGAN-SIGNATURE v1 <base64 raw public key> <base64 Ed25519 signature>`` (153 ASCII bytes), the
signature over ``SIGNED_CONTEXT + SHA-512(every byte of the file before the comment)``. Those
bytes include the end record itself and its comment-length field, so the signature covers every
byte of the file but the comment, and the comment is parsed strictly (fixed length, canonical
base64): changing any byte anywhere makes verification fail. The file must end exactly where the
comment ends (appended data, a second archive or a second end record after it fail), the central
directory must end exactly where the end record says, and the members must tile the file from
byte 0 (prepended or hidden data fails). Then every member is hashed against the manifest, and
the set of members must equal the manifest's. Hashing the bytes first (SHA-512) lets a package of
gigabytes be signed and checked while streamed, without holding it in memory.

Without a pinned public key, verification proves the package is unchanged since the key shown
signed it; whether that key is the CERT's is for the reader to compare (the fingerprint is on
the PDF and printed by the command) or to pin with ``--public-key``.

Pure: no database, no web. The caller gathers the incident's data into :class:`ReferralInput`.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import struct
import unicodedata
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fpdf import FPDF, FontFace

from qorgan.core.errors import QorganError
from qorgan.core.pdf import FONT_DIR
from qorgan.core.signing import decode_base64, fingerprint, public_key_bytes

#: The manifest's ``format`` and ``version``; a reader refuses what it does not know.
FORMAT = "qorgan-referral"
FORMAT_VERSION = 1
LANGUAGES = ("kk", "ru", "en")
#: Times in the PDF and CSVs: the law-enforcement reader's wall clock.
ALMATY = ZoneInfo("Asia/Almaty")
#: The seal's fixed opening; what follows is a 44- and an 88-character base64 text.
SEAL_PREFIX = b"QORGAN-SIGNATURE v1 "
SEAL_LENGTH = len(SEAL_PREFIX) + 44 + 1 + 88
#: Prepended to the SHA-512 of the signed bytes, so the signature means this and nothing else.
SIGNED_CONTEXT = b"QORGAN-REFERRAL-PACKAGE v1\x00SHA-512\x00"
#: A package holds its generated files, its evidence and its manifest; more is not a package.
MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: Of each kind of problem (extra members, missing members, ...) this many are listed by name.
MAX_LISTED = 20
MANIFEST = "manifest.json"
VERIFY_COMMAND = "qorgan incidents verify-export FILE"

_SEAL = re.compile(rb"QORGAN-SIGNATURE v1 ([A-Za-z0-9+/]{43}=) ([A-Za-z0-9+/]{86}==)")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory, without the comment
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_CHUNK = 1024 * 1024
_IN_MEMORY = 16 * 1024 * 1024
_FONTS = FONT_DIR
_LABELS = Path(__file__).with_name("referral_labels.yml")
#: What reading a hostile or damaged archive may raise; each becomes a problem, never a crash.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    zlib.error,
    UnicodeDecodeError,
)


class ReferralError(QorganError):
    """The package cannot be built (or a key read): the message says what to fix."""


# --- input ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Article:
    """A Criminal Code article the CERT suggests; a candidate, never a legal qualification."""

    number: str
    name: str


@dataclass(frozen=True)
class IncidentSummary:
    """The incident as the summary shows it; classes and states are already display labels."""

    reference: str
    title: str
    description: str
    organisation: str
    kz_cert_class: str | None
    rsit: str | None
    severity: str
    status: str
    tlp: str
    pap: str
    first_event_at: datetime | None
    detected_at: datetime
    assets: list[str]


@dataclass(frozen=True)
class TimelineEntry:
    """One step of the incident's history (``time`` is timezone-aware)."""

    time: datetime
    kind: str
    actor: str | None
    text: str


@dataclass(frozen=True)
class Observable:
    """An indicator seen in the incident (an address, a domain, a hash, an account...)."""

    kind: str
    value: str


@dataclass(frozen=True)
class EvidenceFile:
    """An evidence file in the store, with the SHA-256 and size recorded when it was added."""

    name: str
    sha256: str
    size: int
    path: Path
    added_by: str | None
    added_at: datetime


@dataclass(frozen=True)
class CustodyEntry:
    """One line of the chain of custody: who did what to which evidence (by its SHA-256)."""

    time: datetime
    actor: str | None
    action: str
    sha256: str | None


@dataclass(frozen=True)
class ReferralInput:
    """Everything a package is built from; nothing else (no clock, no database) is read."""

    language: str
    incident: IncidentSummary
    articles: list[Article]
    timeline: list[TimelineEntry]
    observables: list[Observable]
    evidence: list[EvidenceFile]
    custody: list[CustodyEntry]
    generated_by: str
    generated_at: datetime


# --- output -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A file of the package as the manifest lists it (``original_name`` for evidence only)."""

    path: str
    size: int
    sha256: str
    original_name: str | None = None


@dataclass(frozen=True)
class Manifest:
    """The package's table of contents, stored as ``manifest.json`` and covered by the seal."""

    incident: str
    generated_at: datetime
    generated_by: str
    language: str
    public_key: bytes
    members: tuple[Member, ...]
    version: int = FORMAT_VERSION

    @property
    def fingerprint(self) -> str:
        """The signer's key fingerprint, as the PDF and the command show it."""
        return fingerprint(self.public_key)

    def to_json(self) -> bytes:
        """The manifest's bytes: UTF-8, keys in a fixed order, so a package is reproducible."""
        members = []
        for member in self.members:
            entry: dict[str, Any] = {
                "path": member.path,
                "size": member.size,
                "sha256": member.sha256,
            }
            if member.original_name is not None:
                entry["original_name"] = member.original_name
            members.append(entry)
        document = {
            "format": FORMAT,
            "version": self.version,
            "incident": self.incident,
            "generated_at": self.generated_at.isoformat(),
            "generated_by": self.generated_by,
            "language": self.language,
            "signature": {
                "algorithm": "Ed25519",
                "public_key": base64.b64encode(self.public_key).decode("ascii"),
                "fingerprint": self.fingerprint,
                "seal": (
                    "end-of-central-directory comment 'QORGAN-SIGNATURE v1 <public key> "
                    "<signature>', signing SIGNED_CONTEXT + SHA-512 of all bytes before it"
                ),
            },
            "members": members,
        }
        return json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Read a manifest strictly; :class:`ValueError` says in plain words what is wrong."""
        document = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        if not isinstance(document, dict):
            raise ValueError("it is not a JSON object")
        if document.get("format") != FORMAT:
            raise ValueError(f"its format is {document.get('format')!r}, not {FORMAT!r}")
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {document.get('version')!r} is not supported")
        members = document.get("members")
        if not isinstance(members, list):
            raise ValueError("it has no list of members")
        if len(members) > MAX_MEMBERS:
            raise ValueError(
                f"it lists {len(members)} members, more than the {MAX_MEMBERS} a package may hold"
            )
        signature = document.get("signature")
        public = signature.get("public_key") if isinstance(signature, dict) else None
        try:
            key = decode_base64(public.encode("ascii"), 32) if isinstance(public, str) else None
        except UnicodeEncodeError:
            key = None
        if key is None:
            raise ValueError("its signer's public key is missing or malformed")
        parsed = tuple(_member(entry, index) for index, entry in enumerate(members))
        when = document.get("generated_at")
        try:
            generated_at = datetime.fromisoformat(when) if isinstance(when, str) else None
        except ValueError:
            generated_at = None
        if generated_at is None or generated_at.tzinfo is None:
            raise ValueError("its generated_at is not an ISO 8601 time with a UTC offset")
        texts = {k: document.get(k) for k in ("incident", "generated_by", "language")}
        for name, value in texts.items():
            if not isinstance(value, str):
                raise ValueError(f"its {name} is not a text")
        return cls(
            incident=texts["incident"],
            generated_at=generated_at,
            generated_by=texts["generated_by"],
            language=texts["language"],
            public_key=key,
            members=parsed,
        )


@dataclass(frozen=True)
class Verification:
    """The verdict on a package: ``ok`` only when ``problems`` is empty."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    signer: str = ""
    manifest: Manifest | None = None


# --- building ---------------------------------------------------------------------------------


def build_package(
    data: ReferralInput, *, signing_key: Ed25519PrivateKey, out: BinaryIO
) -> Manifest:
    """Write the signed package for ``data`` to ``out`` (which needs only ``write``).

    Evidence files are streamed from their paths and re-hashed while copied; a file that differs
    from its recorded SHA-256 or size raises :class:`ReferralError` (the store may have been
    tampered with). On any error ``out`` holds an unsigned, incomplete archive: discard it -- it
    can never verify, because the seal is written last."""
    _check_input(data)
    public = public_key_bytes(signing_key)
    labels = _labels(data.language)
    when = _zip_time(data.generated_at)
    sink = _SealingWriter(out, SEAL_LENGTH)
    members: list[Member] = []
    with zipfile.ZipFile(sink, "w") as archive:
        generated = (
            ("summary.pdf", _render_pdf(data, labels, fingerprint(public)), zipfile.ZIP_STORED),
            ("timeline.csv", _timeline_csv(data.timeline), zipfile.ZIP_DEFLATED),
            ("observables.csv", _observables_csv(data.observables), zipfile.ZIP_DEFLATED),
            ("custody.csv", _custody_csv(data.custody), zipfile.ZIP_DEFLATED),
        )
        for name, content, method in generated:
            archive.writestr(_zip_info(name, when, method), content, compresslevel=6)
            members.append(Member(name, len(content), hashlib.sha256(content).hexdigest()))
        seen: set[str] = set()
        for evidence in data.evidence:
            path = evidence_path(evidence)
            if path not in seen:  # the same bytes under the same name: stored once
                seen.add(path)
                members.append(_copy_evidence(archive, evidence, path, when))
        manifest = Manifest(
            incident=data.incident.reference,
            generated_at=data.generated_at,
            generated_by=data.generated_by,
            language=data.language,
            public_key=public,
            members=tuple(members),
        )
        archive.writestr(
            _zip_info(MANIFEST, when, zipfile.ZIP_DEFLATED), manifest.to_json(), compresslevel=6
        )
        archive.comment = bytes(SEAL_LENGTH)  # a placeholder of the seal's length, held back
    signed = sink.finish()
    signature = signing_key.sign(SIGNED_CONTEXT + signed)
    seal = b" ".join((SEAL_PREFIX.rstrip(), base64.b64encode(public), base64.b64encode(signature)))
    assert len(seal) == SEAL_LENGTH  # fixed by the key and signature sizes
    out.write(seal)
    return manifest


def evidence_path(evidence: EvidenceFile) -> str:
    """The member an evidence file is stored as: its hash first (unique, and what the custody
    log names), then its name made safe to extract on any system."""
    return f"evidence/{evidence.sha256.lower()}-{_safe_name(evidence.name)}"


class _SealingWriter:
    """A write-only stream that passes everything but the last ``hold`` bytes on to ``out``,
    hashing what it passes: those are exactly the bytes the signature covers. Having no ``tell``
    makes :mod:`zipfile` write data descriptors instead of seeking back, so ``out`` may be a
    pipe or a network response."""

    def __init__(self, out: BinaryIO, hold: int) -> None:
        self._out = out
        self._hold = hold
        self._tail = bytearray()
        self._digest = hashlib.sha512()

    def write(self, data: bytes) -> int:
        self._tail += data
        if len(self._tail) > self._hold:
            cut = len(self._tail) - self._hold
            chunk = bytes(self._tail[:cut])
            del self._tail[:cut]
            self._digest.update(chunk)
            self._out.write(chunk)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: the held bytes stay until the seal replaces them."""

    def finish(self) -> bytes:
        """The SHA-512 of everything before the held-back comment placeholder."""
        if bytes(self._tail) != bytes(self._hold):
            raise AssertionError("the archive did not end with the seal placeholder")
        return self._digest.digest()


def _copy_evidence(
    archive: zipfile.ZipFile, evidence: EvidenceFile, path: str, when: Any
) -> Member:
    """Stream one evidence file into the archive, checking its size and SHA-256 on the way."""
    info = _zip_info(path, when, zipfile.ZIP_STORED)
    info.file_size = evidence.size  # lets zipfile choose ZIP64 for large files up front
    digest = hashlib.sha256()
    size = 0
    source = str(evidence.path)
    try:
        with evidence.path.open("rb") as src, archive.open(info, "w") as dst:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > evidence.size:
                    break
                digest.update(chunk)
                dst.write(chunk)
    except FileNotFoundError as exc:
        raise ReferralError(
            f"evidence file {evidence.name!r} is missing from the store", source=source
        ) from exc
    except OSError as exc:
        raise ReferralError(
            f"cannot read evidence file {evidence.name!r}: {exc.strerror}", source=source
        ) from exc
    found = digest.hexdigest()
    if size != evidence.size or found != evidence.sha256.lower():
        if size > evidence.size:
            what = f"is larger than the {evidence.size} bytes recorded"
        elif size < evidence.size:
            what = f"is {size} bytes, not the {evidence.size} recorded"
        else:
            what = f"has SHA-256 {found}, not the {evidence.sha256.lower()} recorded"
        raise ReferralError(
            f"evidence file {evidence.name!r} no longer matches what was recorded: it {what}. "
            "The evidence store may have been tampered with; the export was stopped",
            source=source,
        )
    return Member(path, size, found, original_name=evidence.name)


def _check_input(data: ReferralInput) -> None:
    """Refuse input the package would state wrongly: naive times, unknown languages, bad hashes."""
    if data.language not in LANGUAGES:
        raise ReferralError(f"language {data.language!r} is not one of {', '.join(LANGUAGES)}")
    times: list[tuple[str, datetime | None]] = [
        ("generated_at", data.generated_at),
        ("incident detected_at", data.incident.detected_at),
        ("incident first_event_at", data.incident.first_event_at),
    ]
    times += [(f"timeline entry {i + 1}", e.time) for i, e in enumerate(data.timeline)]
    times += [(f"custody entry {i + 1}", e.time) for i, e in enumerate(data.custody)]
    times += [(f"evidence {e.name!r} added_at", e.added_at) for e in data.evidence]
    for what, when in times:
        if when is not None and when.utcoffset() is None:
            raise ReferralError(f"{what} has no time zone; times must be timezone-aware")
    for evidence in data.evidence:
        if not _SHA256.fullmatch(evidence.sha256.lower()):
            raise ReferralError(f"evidence {evidence.name!r} has no valid SHA-256")
        if evidence.size < 0:
            raise ReferralError(f"evidence {evidence.name!r} has a negative size")


def _zip_info(name: str, when: tuple[int, int, int, int, int, int], method: int) -> zipfile.ZipInfo:
    """A member header that depends on nothing but its arguments (no clock, no host)."""
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = method
    info.create_system = 3  # Unix, whatever builds it
    info.external_attr = 0o100644 << 16
    return info


def _zip_time(moment: datetime) -> tuple[int, int, int, int, int, int]:
    """The members' timestamp: when the package was generated, Almaty time, in DOS range."""
    local = moment.astimezone(ALMATY)
    year = min(max(local.year, 1980), 2107)
    return (year, local.month, local.day, local.hour, local.minute, local.second)


def _safe_name(name: str) -> str:
    """A file name without paths or characters that trouble an unzip tool, Kazakh letters kept."""
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in base).lstrip(".")
    if len(safe) > 100:
        stem, dot, suffix = safe.rpartition(".")
        suffix = f".{suffix}" if dot and stem and len(suffix) <= 16 else ""
        safe = safe[: 100 - len(suffix)] + suffix
    return safe or "file"


# --- CSV --------------------------------------------------------------------------------------


def _csv(header: Sequence[str], rows: Iterable[Sequence[str | None]]) -> bytes:
    """UTF-8 with BOM, CRLF, formula-looking cells defused (see the module's docstring)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_defuse(cell or "") for cell in row])
    return buffer.getvalue().encode("utf-8-sig")


def _defuse(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _iso(moment: datetime) -> str:
    return moment.astimezone(ALMATY).isoformat()


def _timeline_csv(timeline: Sequence[TimelineEntry]) -> bytes:
    rows = ((_iso(e.time), e.kind, e.actor, e.text) for e in timeline)
    return _csv(("time", "kind", "actor", "text"), rows)


def _observables_csv(observables: Sequence[Observable]) -> bytes:
    return _csv(("kind", "value"), ((o.kind, o.value) for o in observables))


def _custody_csv(custody: Sequence[CustodyEntry]) -> bytes:
    rows = ((_iso(e.time), e.actor, e.action, e.sha256) for e in custody)
    return _csv(("time", "actor", "action", "sha256"), rows)


# --- PDF --------------------------------------------------------------------------------------


@cache
def _all_labels() -> dict[str, dict[str, str]]:
    with _LABELS.open(encoding="utf-8") as handle:
        labels: dict[str, dict[str, str]] = yaml.safe_load(handle)
    return labels


def _labels(language: str) -> dict[str, str]:
    """The summary's words in ``language`` (``referral_labels.yml``)."""
    return {key: texts[language] for key, texts in _all_labels().items()}


class _SummaryPdf(FPDF):
    """A4 pages with the reference and TLP on top and the page number and signer below."""

    FONT = "DejaVu"

    def __init__(self, labels: dict[str, str], reference: str, tlp: str, signer: str) -> None:
        super().__init__(format="A4")
        self.labels = labels
        self.reference = reference
        self.tlp = tlp
        self.signer = signer
        self.add_font(self.FONT, "", _FONTS / "DejaVuSans.ttf")
        self.add_font(self.FONT, "B", _FONTS / "DejaVuSans-Bold.ttf")
        fonts = (self.fonts["dejavu"], self.fonts["dejavuB"])
        self.glyphs: frozenset[int] = frozenset(fonts[0].cmap).intersection(fonts[1].cmap)
        self.set_margins(14, 16, 14)
        self.set_auto_page_break(True, margin=16)

    def header(self) -> None:
        self.set_font(self.FONT, "", 7.5)
        self.set_text_color(110)
        self.set_y(7)
        self.cell(0, 4, self.visible(f"{self.reference} · {self.labels['title']}"))
        self.set_x(self.l_margin)
        self.cell(0, 4, self.visible(self.tlp), align="R")
        self.set_text_color(0)
        self.set_y(self.t_margin)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(self.FONT, "", 7.5)
        self.set_text_color(110)
        self.cell(0, 4, self.labels["page"].format(page=self.page_no(), pages="{nb}"))
        self.set_x(self.l_margin)
        self.cell(0, 4, f"Ed25519 {self.signer}", align="R")
        self.set_text_color(0)

    def visible(self, text: str) -> str:
        """``text`` with what would print as nothing or mislead shown as ``<U+XXXX>``: control
        and format characters (a right-to-left override can disguise a file name) and letters
        the font lacks. The CSVs and the evidence keep the exact text."""
        out = []
        for char in text:
            category = unicodedata.category(char)
            if char == "\n" or (category[0] != "C" and ord(char) in self.glyphs):
                out.append(char)
            elif char == "\t":
                out.append(" ")
            else:
                out.append(f"<U+{ord(char):04X}>")
        return "".join(out)

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 50:
            self.add_page()
        self.ln(4)
        self.set_font(self.FONT, "B", 12)
        self.multi_cell(0, 6, self.visible(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.ln(1)
        self.set_font(self.FONT, "", 9)

    def paragraph(self, text: str, size: float = 9, style: str = "") -> None:
        self.set_font(self.FONT, style, size)
        self.multi_cell(0, size * 0.5, self.visible(text), align="L", new_x="LMARGIN", new_y="NEXT")
        self.set_font(self.FONT, "", 9)

    def grid(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        full_text_in: str | None = None,
        headings: bool = True,
    ) -> None:
        """A table that breaks across pages with its header repeated. Each cell is clipped to
        what surely fits on a page (fpdf2 cannot split a row), pointing to the full text."""
        if not rows:
            self.paragraph(self.labels["empty"])
            return
        self.set_font(self.FONT, "", 8)
        scale = (self.w - self.l_margin - self.r_margin) / sum(widths)
        widths = [w * scale for w in widths]
        clipped = self.labels["clipped"].format(member=full_text_in) if full_text_in else " …"
        style = FontFace(emphasis="BOLD", fill_color=(225, 230, 238))
        with self.table(
            col_widths=widths,
            width=sum(widths),
            text_align="LEFT",
            v_align="TOP",
            line_height=self.font_size * 1.3,
            headings_style=style,
            first_row_as_headings=headings,
            repeat_headings=1,
            padding=(0.8, 1),
        ) as table:
            if headings:
                table.row([self.visible(h) for h in header])
            for row in rows:
                table.row(
                    [
                        self._clip(cell, width, clipped)
                        for cell, width in zip(row, widths, strict=True)
                    ]
                )
        self.set_font(self.FONT, "", 9)

    def _clip(self, text: str, width: float, marker: str) -> str:
        """At most 20 lines, and 30 lines' worth of the widest letters at 8 pt in a column
        ``width`` mm wide: together under 60 % of a page."""
        text = self.visible(text)
        limit = max(int((width - 2) / 2.9) * 30, 40)
        lines = text.split("\n")
        if len(text) <= limit and len(lines) <= 20:
            return text
        return "\n".join(lines[:20])[: limit - len(marker)] + marker


def _render_pdf(data: ReferralInput, labels: dict[str, str], signer: str) -> bytes:
    """The summary PDF; the same input gives the same bytes (creation date = generated_at)."""
    incident = data.incident
    tlp = incident.tlp if incident.tlp.upper().startswith("TLP:") else f"TLP:{incident.tlp.upper()}"
    pdf = _SummaryPdf(labels, incident.reference, tlp, signer)
    pdf.set_creation_date(data.generated_at)
    pdf.set_lang(data.language)
    pdf.set_title(f"{incident.reference}: {labels['title']}")
    pdf.set_author(data.generated_by)
    pdf.set_creator("Qorgan")
    pdf.add_page()

    pdf.paragraph(labels["title"], size=16, style="B")
    pdf.ln(2)
    pdf.paragraph(f"{labels['incident']} {incident.reference}", size=13, style="B")
    pdf.paragraph(incident.title, size=11)
    pdf.ln(2)
    pdf.paragraph(f"{labels['generated_at']}: {_shown(data.generated_at)} (Asia/Almaty)")
    pdf.paragraph(f"{labels['generated_by']}: {data.generated_by}")

    pdf.heading(labels["section_summary"])
    none = "—"
    facts = [
        (labels["field_organisation"], incident.organisation),
        (labels["field_kz_cert_class"], incident.kz_cert_class or none),
        (labels["field_rsit"], incident.rsit or none),
        (labels["field_severity"], incident.severity),
        (labels["field_status"], incident.status),
        (labels["field_tlp"], tlp),
        (labels["field_pap"], incident.pap),
        (labels["field_first_event"], _shown(incident.first_event_at) or none),
        (labels["field_detected"], _shown(incident.detected_at)),
    ]
    pdf.grid(("", ""), facts, (55, 125), headings=False)
    for label, text in (
        (labels["field_assets"], ", ".join(incident.assets)),
        (labels["field_description"], incident.description),
    ):
        pdf.ln(2)
        pdf.paragraph(label, style="B")
        pdf.paragraph(text or none)

    pdf.heading(labels["section_articles"])
    pdf.paragraph(labels["articles_disclaimer"], size=9, style="B")
    pdf.ln(1)
    if data.articles:
        rows = [(a.number, a.name) for a in data.articles]
        header = (labels["article_number"], labels["article_name"])
        pdf.grid(header, rows, (25, 155))
    else:
        pdf.paragraph(labels["no_articles"])

    pdf.heading(labels["section_timeline"])
    pdf.paragraph(labels["times_note"], size=8)
    pdf.ln(1)
    header = (labels["col_time"], labels["col_kind"], labels["col_actor"], labels["col_text"])
    rows = [(_shown(e.time), e.kind, e.actor or none, e.text) for e in data.timeline]
    pdf.grid(header, rows, (34, 20, 30, 96), "timeline.csv")

    pdf.heading(labels["section_observables"])
    rows = [(o.kind, o.value) for o in data.observables]
    pdf.grid((labels["col_kind"], labels["col_value"]), rows, (35, 145), "observables.csv")

    pdf.heading(labels["section_evidence"])
    header = (labels["col_file"], labels["col_size"], "SHA-256", labels["col_added"])
    rows = [
        (
            e.name,
            f"{e.size:,}".replace(",", " "),
            _two_lines(e.sha256.lower()),
            f"{_shown(e.added_at)}\n{e.added_by or none}",
        )
        for e in data.evidence
    ]
    pdf.grid(header, rows, (56, 20, 62, 42), "manifest.json")

    pdf.heading(labels["section_custody"])
    header = (labels["col_time"], labels["col_actor"], labels["col_action"], "SHA-256")
    rows = [
        (
            _shown(e.time),
            e.actor or none,
            e.action,
            _two_lines(e.sha256.lower()) if e.sha256 else none,
        )
        for e in data.custody
    ]
    pdf.grid(header, rows, (34, 30, 54, 62), "custody.csv")

    pdf.heading(labels["section_integrity"])
    pdf.paragraph(labels["integrity_text"].format(command=VERIFY_COMMAND))
    pdf.ln(2)
    pdf.paragraph(f"{labels['signer_fingerprint']}:", style="B")
    pdf.paragraph(signer, size=11)
    return bytes(pdf.output())


def _shown(moment: datetime | None) -> str:
    """A time as the summary prints it: Almaty wall clock, to the second."""
    return moment.astimezone(ALMATY).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _two_lines(digest: str) -> str:
    """A SHA-256 in two halves, so the tables keep a readable width."""
    return f"{digest[:32]}\n{digest[32:]}"


# --- verification -----------------------------------------------------------------------------


def verify_package(path: Path, *, public_key: bytes | None = None) -> Verification:
    """Check a package: the seal, the archive's layout, and every member against the manifest.

    Lists every problem found rather than stopping at the first, so a damaged package says
    which part was changed. With ``public_key`` (32 raw bytes), a package signed by any other
    key fails. Never raises on a hostile or damaged file."""
    _check_pin(public_key)
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= _IN_MEMORY:  # one read, then parsing in memory: a third faster
                return _verify(io.BytesIO(handle.read()), size, public_key)
            return _verify(handle, size, public_key)
    except OSError as exc:
        return Verification(ok=False, problems=[f"cannot read {path}: {exc.strerror or exc}"])


def verify_bytes(data: bytes, *, public_key: bytes | None = None) -> Verification:
    """:func:`verify_package` for a package held in memory (an upload, a test)."""
    _check_pin(public_key)
    return _verify(io.BytesIO(data), len(data), public_key)


def _check_pin(public_key: bytes | None) -> None:
    if public_key is not None and len(public_key) != 32:
        raise ReferralError("a pinned Ed25519 public key is 32 bytes")


def _verify(handle: BinaryIO, size: int, pinned: bytes | None) -> Verification:
    problems: list[str] = []
    signer = ""
    seal = _read_seal(handle, size, problems)
    public = None
    if seal is not None:
        public, signature = seal
        signer = fingerprint(public)
        if pinned is not None and public != pinned:
            problems.append(
                f"signed by key {signer}, not by the expected key {fingerprint(pinned)}"
            )
        digest = _prefix_digest(handle, size - SEAL_LENGTH)
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, SIGNED_CONTEXT + digest)
        except InvalidSignature:
            problems.append(
                "the signature does not match the file: bytes were changed after it was signed"
            )
        except ValueError:
            problems.append("the public key in the signature is not a valid Ed25519 key")
    manifest = None
    layout = _read_layout(handle, size, problems) if seal is not None else None
    if layout is not None:
        manifest = _check_archive(handle, layout, public, problems)
    return Verification(ok=not problems, problems=problems, signer=signer, manifest=manifest)


def _read_seal(handle: BinaryIO, size: int, problems: list[str]) -> tuple[bytes, bytes] | None:
    """The public key and signature from the comment that must end the file, parsed strictly."""
    if size < _EOCD.size + SEAL_LENGTH:
        problems.append(f"the file is {size} bytes: too short to be a signed referral package")
        return None
    handle.seek(size - SEAL_LENGTH - _EOCD.size)
    tail = handle.read(_EOCD.size + SEAL_LENGTH)
    magic, *_, comment_length = _EOCD.unpack(tail[: _EOCD.size])
    if magic != b"PK\x05\x06" or comment_length != SEAL_LENGTH:
        problems.append(_why_no_seal(handle, size))
        return None
    match = _SEAL.fullmatch(tail[_EOCD.size :])
    public = decode_base64(match[1], 32) if match else None
    signature = decode_base64(match[2], 64) if match else None
    if public is None or signature is None:
        problems.append(
            "the signature comment is malformed "
            "(expected 'QORGAN-SIGNATURE v1 <public key> <signature>' in canonical base64)"
        )
        return None
    return public, signature


def _why_no_seal(handle: BinaryIO, size: int) -> str:
    """Say why the file does not end with a seal: appended bytes, a cut, or not a package."""
    start = max(0, size - 65_536 - _EOCD.size - SEAL_LENGTH)
    handle.seek(start)
    window = handle.read()
    at = window.rfind(SEAL_PREFIX)
    if at >= _EOCD.size and window[at - _EOCD.size : at - _EOCD.size + 4] == b"PK\x05\x06":
        end = start + at + SEAL_LENGTH
        if end < size:
            return (
                f"{size - end} bytes follow the package's signature: data was appended "
                "(or another archive added) after it was signed"
            )
        if end > size:
            return "the file ends inside the package's signature: it was truncated"
        return "the archive's end record was altered (its signature, length or magic)"
    if b"PK\x05\x06" in window:
        return (
            "the ZIP archive does not end with a Qorgan signature: not a referral package, "
            "or it was re-packed or truncated"
        )
    return (
        "not a ZIP archive (no end-of-central-directory record): "
        "not a referral package, or truncated"
    )


def _prefix_digest(handle: BinaryIO, length: int) -> bytes:
    digest = hashlib.sha512()
    handle.seek(0)
    remaining = length
    while remaining > 0 and (chunk := handle.read(min(_CHUNK, remaining))):
        digest.update(chunk)
        remaining -= len(chunk)
    return digest.digest()


@dataclass(frozen=True)
class _Layout:
    """Where the central directory is, as the end records state it."""

    entries: int
    directory_start: int
    directory_end: int


def _read_layout(handle: BinaryIO, size: int, problems: list[str]) -> _Layout | None:
    """Read the end record (and the ZIP64 one, when its locator precedes the end record, as
    zipfile reads it) and check that the central directory ends exactly where they begin, and
    that the member count is a package's."""
    eocd_at = size - SEAL_LENGTH - _EOCD.size
    handle.seek(eocd_at)
    _, disk, cd_disk, on_disk, entries, cd_size, cd_offset, _ = _EOCD.unpack(
        handle.read(_EOCD.size)
    )
    directory_end = eocd_at
    if disk or cd_disk or on_disk != entries:
        problems.append("the archive claims to span several disks")
        return None
    locator_at = eocd_at - _ZIP64_LOCATOR.size
    locator = b""
    if locator_at >= 0:
        handle.seek(locator_at)
        locator = handle.read(_ZIP64_LOCATOR.size)
    if locator[:4] == b"PK\x06\x07":
        _, locator_disk, record_at, disks = _ZIP64_LOCATOR.unpack(locator)
        handle.seek(record_at)
        record = handle.read(_ZIP64_EOCD.size)
        if len(record) != _ZIP64_EOCD.size:
            problems.append("the ZIP64 end record is missing")
            return None
        magic, record_size, _, _, disk, cd_disk, on_disk, entries, cd_size, cd_offset = (
            _ZIP64_EOCD.unpack(record)
        )
        if magic != b"PK\x06\x06" or record_at + 12 + record_size != locator_at:
            problems.append("the ZIP64 end record is damaged or misplaced")
            return None
        if locator_disk or disks != 1 or disk or cd_disk or on_disk != entries:
            problems.append("the archive claims to span several disks")
            return None
        directory_end = record_at
    elif entries == 0xFFFF or 0xFFFFFFFF in (cd_size, cd_offset):
        problems.append("the ZIP64 end record is missing")
        return None
    if entries > MAX_MEMBERS + 1:
        problems.append(
            f"the archive declares {entries} members, more than the {MAX_MEMBERS} a package "
            "may hold; not read further"
        )
        return None
    if cd_offset + cd_size != directory_end:
        problems.append(
            "the central directory does not end where the end record begins: "
            "bytes were inserted or removed"
        )
        return None
    return _Layout(entries, cd_offset, directory_end)


def _check_archive(
    handle: BinaryIO, layout: _Layout, public: bytes | None, problems: list[str]
) -> Manifest | None:
    """Open the archive and hold it to the manifest: same members, same sizes, same hashes."""
    try:
        archive = zipfile.ZipFile(handle)
    except _ZIP_ERRORS as exc:
        problems.append(f"the ZIP archive cannot be read: {exc}")
        return None
    with archive:
        infos = archive.infolist()
        if len(infos) != layout.entries:
            problems.append(
                "the central directory holds a different number of members than declared"
            )
        _check_tiling(handle, infos, layout, problems)
        names = [info.filename for info in infos]
        duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
        _report(problems, "member appears more than once in the archive", duplicates)
        _report(problems, "member has an unsafe name", [n for n in names if not _safe_member(n)])
        _report(problems, "member is encrypted", [i.filename for i in infos if i.flag_bits & 1])
        manifest = _read_manifest(archive, problems)
        if manifest is None:
            return None
        if public is not None and manifest.public_key != public:
            problems.append("the manifest names a different signer than the signature")
        listed: dict[str, Member] = {}
        for member in manifest.members:
            if member.path in listed or member.path == MANIFEST:
                problems.append(f"the manifest lists {member.path} more than once")
            listed[member.path] = member
        extra = []
        for info in infos:
            if info.filename == MANIFEST:
                continue
            member = listed.get(info.filename)
            if member is None:
                extra.append(info.filename)
            else:
                _check_member(archive, info, member, problems)
        _report(problems, "member is in the archive but not in the manifest", extra)
        present = set(names)
        missing = [path for path in listed if path not in present]
        _report(problems, "member is in the manifest but missing from the archive", missing)
    return manifest


def _check_tiling(
    handle: BinaryIO, infos: Sequence[zipfile.ZipInfo], layout: _Layout, problems: list[str]
) -> None:
    """The members must follow each other from byte 0 to the central directory, with nothing
    before, between or after them: no prepended data, no hidden second archive."""
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            problems.append(
                f"unexplained bytes or overlap before member {info.filename} "
                f"(offset {info.header_offset}, expected {position})"
            )
            return
        handle.seek(position)
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            problems.append(f"the local header of {info.filename} is cut off")
            return
        magic, *_, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        name = handle.read(name_length)
        extra = handle.read(extra_length)
        if magic != b"PK\x03\x04" or name != info.orig_filename.encode(
            "utf-8" if info.flag_bits & 0x800 else "cp437"
        ):
            problems.append(f"the local header of {info.filename} does not match the directory")
            return
        position += _LOCAL_HEADER.size + name_length + extra_length + info.compress_size
        if info.flag_bits & 0x08:  # a data descriptor follows: 16 bytes, 24 with ZIP64 sizes
            position += 24 if _has_zip64(extra) else 16
    if position != layout.directory_start:
        problems.append(
            f"unexplained bytes between the last member and the central directory "
            f"(members end at {position}, the directory starts at {layout.directory_start})"
        )


def _has_zip64(extra: bytes) -> bool:
    at = 0
    while at + 4 <= len(extra):
        kind, length = struct.unpack_from("<2H", extra, at)
        if kind == 1:
            return True
        at += 4 + length
    return False


def _read_manifest(archive: zipfile.ZipFile, problems: list[str]) -> Manifest | None:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        problems.append(f"the archive has no {MANIFEST}")
        return None
    if info.file_size > MAX_MANIFEST_BYTES:
        problems.append(f"{MANIFEST} is {info.file_size} bytes: too large to be read")
        return None
    try:
        with archive.open(info) as handle:
            raw = handle.read(MAX_MANIFEST_BYTES + 1)
        return Manifest.from_json(raw)
    except (*_ZIP_ERRORS, RecursionError) as exc:
        problems.append(f"{MANIFEST} cannot be read: {exc}")
        return None


def _check_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: Member, problems: list[str]
) -> None:
    if info.file_size != member.size:
        problems.append(
            f"{info.filename} is {info.file_size} bytes, the manifest says {member.size}"
        )
        return  # not decompressed: a declared size that lies may be a zip bomb
    digest = hashlib.sha256()
    try:
        with archive.open(info) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except _ZIP_ERRORS as exc:
        problems.append(f"{info.filename} is damaged: {exc}")
        return
    if digest.hexdigest() != member.sha256:
        problems.append(f"{info.filename} does not match its SHA-256 in the manifest")


def _report(problems: list[str], what: str, names: Sequence[str]) -> None:
    """One problem per name, up to :data:`MAX_LISTED`, then a count of the rest."""
    problems.extend(f"{what}: {name}" for name in names[:MAX_LISTED])
    if len(names) > MAX_LISTED:
        problems.append(f"{what}: and {len(names) - MAX_LISTED} more")


def _safe_member(name: str) -> bool:
    """Extracting it cannot write outside the target folder, on Unix or Windows."""
    parts = name.split("/")
    return (
        bool(name)
        and not name.startswith("/")
        and "\\" not in name
        and ":" not in name
        and all(part not in ("", ".", "..") for part in parts)
    )


def _member(entry: object, index: int) -> Member:
    if not isinstance(entry, dict):
        raise ValueError(f"member {index + 1} is not an object")
    path, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
    original = entry.get("original_name")
    if not isinstance(path, str) or not path:
        raise ValueError(f"member {index + 1} has no path")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ValueError(f"member {path} has no valid size")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ValueError(f"member {path} has no valid SHA-256")
    if original is not None and not isinstance(original, str):
        raise ValueError(f"member {path} has an original name that is not a text")
    return Member(path, size, digest, original)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice in one object")
    return dict(pairs)
