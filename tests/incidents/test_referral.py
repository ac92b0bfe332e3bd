"""The legal-referral package: built from realistic Kazakh and Russian input, readable (the PDF's
text is extracted and the Kazakh letters found), and sealed so that changing any byte, adding
bytes, cutting them, re-packing or re-signing the package makes verification fail."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import stat
import struct
import time
import zipfile
import zlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from qorgan.cli import app
from qorgan.core import signing
from qorgan.core.signing import SigningError
from qorgan.incidents import referral
from qorgan.incidents.referral import (
    Article,
    CustodyEntry,
    EvidenceFile,
    IncidentSummary,
    Observable,
    ReferralError,
    ReferralInput,
    TimelineEntry,
    build_package,
    verify_bytes,
    verify_package,
)

KAZAKH_LETTERS = "ӘәҒғҚқҢңӨөҰұҮүҺһІі"
KAZAKH = (
    "Әкімдік ғимаратындағы қызметкер құпия сөзді өзгертті; Өскемен, Ғалым, Іле, Ұлытау, Һәм. "
    "Әліпбидің әріптері: Ә ә Ғ ғ Қ қ Ң ң Ө ө Ұ ұ Ү ү Һ һ І і"
)
RUSSIAN = "Злоумышленник получил доступ к почтовому серверу и выгрузил переписку"
T0 = datetime(2026, 3, 14, 4, 30, tzinfo=UTC)
NOISE = b"".join(hashlib.sha256(bytes([i])).digest() for i in range(64))  # incompressible


def _evidence(folder: Path, name: str, content: bytes) -> EvidenceFile:
    path = folder / hashlib.sha256(content).hexdigest()
    path.write_bytes(content)
    digest = hashlib.sha256(content).hexdigest()
    return EvidenceFile(name, digest, len(content), path, "Айгүл Сәрсенова", T0)


def _input(
    folder: Path, *, entries: int = 300, evidence: bool = True, language: str = "kk"
) -> ReferralInput:
    files = (
        [
            _evidence(folder, "пошта журналы Қаңтар.log", b"Jan 14 mail sshd: Accepted\n" * 400),
            _evidence(folder, "../../etc/passwd", b"root:x:0:0:root:/root:/bin/bash\n"),
            _evidence(folder, "invoice\u202efdp.exe", bytes(range(256)) * 40),
        ]
        if evidence
        else []
    )
    incident = IncidentSummary(
        reference="INC-2026-000123",
        title=f"Фишинг және поштаға рұқсатсыз кіру / {RUSSIAN}",
        description=(f"{KAZAKH}. {RUSSIAN}. " * 40).strip(),
        organisation="Алматы қаласы әкімдігі",
        kz_cert_class="Ақпараттық жүйеге рұқсатсыз қол жеткізу",
        rsit="Intrusions: Unprivileged Account Compromise",
        severity="Жоғары",
        status="Тергеуде",
        tlp="amber",
        pap="PAP:GREEN",
        first_event_at=T0 - timedelta(days=2),
        detected_at=T0,
        assets=["mail-01.akimat.kz", "ws-0412", "ұйымның VPN шлюзі"],
    )
    timeline = [
        TimelineEntry(
            T0 + timedelta(minutes=7 * i),
            ("alert", "comment", "status")[i % 3],
            None if i % 10 == 0 else "Ерлан Қасымов",
            f"{i}: {KAZAKH if i % 2 else RUSSIAN}",
        )
        for i in range(entries)
    ]
    if entries > 10:  # texts that no table row could hold, and characters that would hide
        timeline[5] = replace(timeline[5], text="Ұзын мәтін " * 3000)
        timeline[6] = replace(timeline[6], text="жол\n" * 500)
        timeline[7] = replace(timeline[7], text="https://evil.example/" + "a/" * 900)
        timeline[8] = replace(timeline[8], text="\x00\x07 control \u202e override 漢字 😀")
    return ReferralInput(
        language=language,
        incident=incident,
        articles=[
            Article("205", "Ақпаратқа заңсыз қол жеткізу"),
            Article("190", "Алаяқтық"),
        ],
        timeline=timeline,
        observables=[
            Observable("ipv4", "203.0.113.45"),
            Observable("domain", "akimat-kz.secure-login.example"),
            Observable("email", "қызмет@akimat-kz.example"),
            Observable("url", '=HYPERLINK("http://evil.example")'),
        ],
        evidence=files,
        custody=[
            CustodyEntry(T0 + timedelta(hours=i), "Айгүл Сәрсенова", action, f.sha256)
            for i, (action, f) in enumerate(
                zip(("қосылды", "көшірілді", "тексерілді"), files, strict=False)
            )
        ]
        + [CustodyEntry(T0, None, "жүйе: экспорт", None)],
        generated_by="Айгүл Сәрсенова (KZ-CERT)",
        generated_at=T0 + timedelta(days=1),
    )


def _build(data: ReferralInput, key: Ed25519PrivateKey) -> bytes:
    out = io.BytesIO()
    build_package(data, signing_key=key, out=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey) -> Path:
    """The realistic package: Kazakh, 300 timeline entries, three evidence files."""
    folder = tmp_path_factory.mktemp("full")
    path = folder / "INC-2026-000123.zip"
    path.write_bytes(_build(_input(folder), key))
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory, key: Ed25519PrivateKey) -> bytes:
    """The smallest real package: no evidence, a short timeline (the fonts are most of it)."""
    data = _input(tmp_path_factory.mktemp("small"), entries=2, evidence=False)
    return _build(replace(data, incident=replace(data.incident, description=KAZAKH)), key)


# --- a package as the recipient sees it -------------------------------------------------------


def test_a_full_package_verifies_and_lists_its_members(full: Path, key: Ed25519PrivateKey) -> None:
    result = verify_package(full)
    assert result.ok, result.problems
    assert result.signer == signing.fingerprint(signing.public_key_bytes(key))
    assert len(result.signer) == 32
    assert result.manifest is not None
    with zipfile.ZipFile(full) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert names[:4] == ["summary.pdf", "timeline.csv", "observables.csv", "custody.csv"]
    assert names[-1] == "manifest.json"
    evidence = [n for n in names if n.startswith("evidence/")]
    assert len(evidence) == 3
    assert all(re.fullmatch(r"evidence/[0-9a-f]{64}-[^/\\]+", n) for n in evidence), evidence
    assert any(n.endswith("-пошта_журналы_Қаңтар.log") for n in evidence)
    assert any(n.endswith("-passwd") for n in evidence)  # no path survives
    assert {m["path"] for m in manifest["members"]} == set(names) - {"manifest.json"}
    assert manifest["incident"] == "INC-2026-000123"
    assert manifest["language"] == "kk"
    assert manifest["generated_at"] == "2026-03-15T04:30:00+00:00"
    assert manifest["signature"]["fingerprint"] == result.signer
    assert [m.path for m in result.manifest.members] == names[:-1]
    assert {m.original_name for m in result.manifest.members if m.original_name} == {
        "пошта журналы Қаңтар.log",
        "../../etc/passwd",
        "invoice\u202efdp.exe",
    }
    comment = full.read_bytes()[-referral.SEAL_LENGTH :]
    assert re.fullmatch(rb"QORGAN-SIGNATURE v1 \S{44} \S{88}", comment)


def test_the_csvs_carry_everything_and_defuse_formulas(full: Path) -> None:
    with zipfile.ZipFile(full) as archive:
        timeline = archive.read("timeline.csv").decode("utf-8-sig").splitlines()
        observables = archive.read("observables.csv").decode("utf-8-sig")
    assert timeline[0] == "time,kind,actor,text"
    assert timeline[1].startswith("2026-03-14T09:30:00+05:00,alert,,0: Злоумышленник")
    assert "Ұзын мәтін " * 3000 in "\n".join(timeline)  # the full text, where the PDF clips
    assert "'=HYPERLINK" in observables and "қызмет@akimat-kz.example" in observables


def test_the_same_input_gives_the_same_bytes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = _input(tmp_path, entries=20)
    assert _build(data, key) == _build(data, key)


# --- the PDF ----------------------------------------------------------------------------------


def _pdf_text(pdf: bytes) -> tuple[str, int]:
    """The text a PDF reader would extract, and the page count: a small reader of what fpdf2
    writes (Type0 fonts with ToUnicode maps, literal strings in Tj/TJ), independent of it."""
    objects = {int(m[1]): m[2] for m in re.finditer(rb"(?m)^(\d+) 0 obj\n(.*?)\nendobj", pdf, re.S)}

    def stream(body: bytes) -> bytes:
        found = re.search(rb"stream\n(.*)\nendstream", body, re.S)
        assert found, body[:80]
        data = found[1]
        return zlib.decompress(data) if b"/FlateDecode" in body[: found.start()] else data

    maps: dict[bytes, dict[int, str]] = {}
    for body in objects.values():
        for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", body):
            font = objects[int(ref)]
            assert b"/Type0" in font, font
            descendant = objects[int(re.search(rb"/DescendantFonts \[(\d+) 0 R\]", font)[1])]
            descriptor = objects[int(re.search(rb"/FontDescriptor (\d+) 0 R", descendant)[1])]
            assert b"/FontFile2" in descriptor, "the font is not embedded"
            assert b"DejaVuSans" in font
            cmap = stream(objects[int(re.search(rb"/ToUnicode (\d+) 0 R", font)[1])]).decode()
            mapping = {
                int(code, 16): bytes.fromhex(text).decode("utf-16-be")
                for code, text in re.findall(r"<([0-9A-F]{4})> <([0-9A-F]+)>\n", cmap)
            }
            for start, end, first in re.findall(
                r"<([0-9A-F]{4})> <([0-9A-F]{4})> <([0-9A-F]+)>", cmap
            ):
                for offset in range(int(end, 16) - int(start, 16) + 1):
                    mapping[int(start, 16) + offset] = chr(int(first, 16) + offset)
            maps[name] = mapping
    pages = [body for body in objects.values() if re.search(rb"/Type /Page\n", body)]
    text = []
    for page in pages:
        content = stream(objects[int(re.search(rb"/Contents (\d+) 0 R", page)[1])])
        font: dict[int, str] = {}
        for token in re.finditer(rb"/(F\d+) [\d.]+ Tf|\(((?:\\.|[^\\)])*)\)|\bET\b", content, re.S):
            if token[1]:
                font = maps[token[1]]
            elif token[2] is not None:
                raw = _unescape(token[2])
                codes = struct.unpack(f">{len(raw) // 2}H", raw)
                text.append("".join(font[c] for c in codes))
            else:
                text.append("\n")
    return "".join(text), len(pages)


def _unescape(literal: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(literal):
        if literal[i] == 0x5C:
            octal = re.match(rb"[0-7]{1,3}", literal[i + 1 :])
            if octal:
                out.append(int(octal[0], 8) & 0xFF)
                i += 1 + len(octal[0])
                continue
            escaped = literal[i + 1 : i + 2]
            out += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(
                escaped, escaped
            )
            i += 2
        else:
            out.append(literal[i])
            i += 1
    return bytes(out)


def test_the_kazakh_pdf_has_every_kazakh_letter_and_breaks_pages(full: Path) -> None:
    with zipfile.ZipFile(full) as archive:
        pdf = archive.read("summary.pdf")
    text, pages = _pdf_text(pdf)
    flat = " ".join(text.split())  # lines wrapped anywhere read as one text
    assert set(KAZAKH_LETTERS) <= set(flat)
    for expected in (
        "Құқық қорғау органдарына жіберуге арналған материалдар",
        "Инцидент INC-2026-000123",
        "Қылмыстық кодексінің қолданылуы мүмкін баптары",
        "заңдық",  # the disclaimer: candidates, not a qualification
        "Ақпаратқа заңсыз қол жеткізу",
        "Asia/Almaty",
        "TLP:AMBER",
        "akimat-kz.secure-login.example",
        "qorgan incidents verify-export FILE",
        "2026-03-14 09:30:00",  # 04:30 UTC shown in Almaty time
        "<U+202E>",  # the right-to-left override is shown, not obeyed
    ):
        assert expected in flat, expected
    assert "Құқық қорғау органдарына жіберуге арналған материалдар" in flat
    assert pages >= 8, pages  # 300 entries and the long texts broke the pages...
    assert text.count("Уақыты") >= pages - 3  # ...and the table headings repeat on each
    assert "[қысқартылды; толық мәтін — timeline.csv файлында]" in flat
    assert b"/Lang (kk)" in pdf and b"/CreationDate (D:20260315043000Z" in pdf


def test_the_russian_pdf_is_in_russian(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    package = _build(_input(tmp_path, entries=12, language="ru"), key)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        text, _ = _pdf_text(archive.read("summary.pdf"))
    flat = " ".join(text.split())
    assert "Материалы для направления в правоохранительные органы" in flat
    assert "не являются" in flat and "квалифицирует деяние только следователь" in flat
    assert RUSSIAN in flat and "Хронология событий" in flat
    assert set(KAZAKH_LETTERS) <= set(flat)  # the data stays Kazakh
    assert verify_bytes(package).ok


def test_cells_no_page_could_hold_are_clipped_not_fatal(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    """fpdf2 cannot split a table row across pages: every cell of every table is clipped, even
    the widest letters in the narrowest column, and control characters shown as <U+XXXX>."""
    data = _input(tmp_path, entries=0, evidence=False)
    worst = ["Ш" * 5000, "W\n" * 400, "\x01" * 3000, "Ш " * 3000, ("Ш" * 40 + "\n") * 40]
    data = replace(
        data,
        timeline=[TimelineEntry(T0, w, w, w) for w in worst],
        observables=[Observable(w, w) for w in worst],
        articles=[Article(w, w) for w in worst],
        custody=[CustodyEntry(T0, w, w, None) for w in worst],
        incident=replace(data.incident, organisation="Ш" * 3000, severity="W\n" * 300),
        generated_by="Ш" * 500,
    )
    assert verify_bytes(_build(data, key)).ok


def test_every_label_exists_in_every_language() -> None:
    labels = referral._all_labels()
    for name, texts in labels.items():
        assert set(texts) == set(referral.LANGUAGES), name
        placeholders = {frozenset(re.findall(r"\{(\w+)\}", text)) for text in texts.values()}
        assert len(placeholders) == 1, name
    for language in referral.LANGUAGES:
        assert referral._labels(language)["title"]


# --- changing bytes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_flipping_any_byte_of_a_small_package_fails_verification(small: bytes) -> None:
    """Exhaustive: every position, XOR 0x01, one at a time. The smallest package still carries
    its PDF's two embedded font subsets (~36 KB of its ~38 KB): about 38,000 verifications at
    ~0.9 ms each, 25-35 s on two shared cores. The full package is sampled in the next test."""
    assert verify_bytes(small).ok
    data = bytearray(small)
    started = time.perf_counter()
    survivors = []
    for position in range(len(data)):
        data[position] ^= 1
        if verify_bytes(bytes(data)).ok:
            survivors.append(position)
        data[position] ^= 1
    elapsed = time.perf_counter() - started
    print(f"\n{len(data)} byte flips verified in {elapsed:.1f} s")
    assert survivors == []


def _positions(data: bytes) -> list[int]:
    """Every k-th byte (about 2,000), and every byte of the central directory, end record and
    seal, and of each local header: where a clever change would go."""
    size = len(data)
    eocd = size - referral.SEAL_LENGTH - 22
    cd_offset = struct.unpack_from("<L", data, eocd + 16)[0]
    chosen = set(range(0, size, max(1, size // 2000)))
    chosen |= set(range(cd_offset, size))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            chosen |= set(range(info.header_offset, info.header_offset + 30 + len(info.filename)))
    return sorted(chosen)


def test_flipping_chosen_bytes_of_a_full_package_fails_verification(full: Path) -> None:
    data = full.read_bytes()
    positions = _positions(data)
    assert len(positions) > 2500
    target = full.with_name("flipped.zip")
    survivors = []
    for position in positions:
        changed = bytearray(data)
        changed[position] ^= 1
        target.write_bytes(changed)
        if verify_package(target).ok:
            survivors.append(position)
    assert survivors == []


def test_a_package_with_zip64_records_verifies_and_they_are_sealed(
    tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An evidence file over 4 GiB makes zipfile write ZIP64 sizes, 24-byte data descriptors
    and ZIP64 end records. With zipfile's limits lowered, a small package has them all."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 4096)
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 3)
    package = _build(_input(tmp_path, entries=2), key)
    monkeypatch.undo()
    record = package.rfind(b"PK\x06\x06")
    assert record > 0 and package.rfind(b"PK\x06\x07") > record
    assert package.count(b"PK\x07\x08") == 8  # every member has its data descriptor
    result = verify_bytes(package)
    assert result.ok, result.problems
    data = bytearray(package)
    for position in range(record, len(data)):  # the ZIP64 records, the end record, the seal
        data[position] ^= 1
        assert not verify_bytes(bytes(data)).ok, position
        data[position] ^= 1


def test_changed_evidence_bytes_name_the_member(full: Path) -> None:
    data = bytearray(full.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("passwd"))
    data[info.header_offset + 30 + len(info.filename.encode()) + 2] ^= 0x20  # "root" -> "rOot"
    result = verify_bytes(bytes(data))
    assert not result.ok
    assert any("signature does not match" in p for p in result.problems)
    assert any(info.filename in p for p in result.problems), result.problems
    assert result.manifest is not None  # still read, to say what changed


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (b"\x00", "1 bytes follow the package's signature"),
        (b"PK\x05\x06" + bytes(18), "22 bytes follow"),
    ],
)
def test_appended_bytes_fail(full: Path, tail: bytes, expected: str) -> None:
    result = verify_bytes(full.read_bytes() + tail)
    assert not result.ok and any(expected in p for p in result.problems), result.problems


def test_an_appended_copy_of_the_end_and_seal_fails(full: Path) -> None:
    """A second end record with the genuine seal after it: the seal no longer signs its prefix."""
    data = full.read_bytes()
    end = data[-(referral.SEAL_LENGTH + 22) :]
    result = verify_bytes(data + end)
    assert not result.ok
    assert "the signature does not match the file" in " ".join(result.problems)


def test_an_appended_archive_signed_by_another_key_fails_when_pinned(
    full: Path, key: Ed25519PrivateKey
) -> None:
    """Someone appends an archive of their own and seals the lot with their key: it verifies
    as theirs, so the fingerprint differs, and a pinned key refuses it."""
    other = Ed25519PrivateKey.generate()
    data = full.read_bytes()
    forged = _seal(data + _zip({"timeline.csv": b"nothing happened"}), other)
    result = verify_bytes(forged, public_key=signing.public_key_bytes(key))
    assert not result.ok
    assert any("not by the expected key" in p for p in result.problems), result.problems
    assert result.signer == signing.fingerprint(signing.public_key_bytes(other))


@pytest.mark.parametrize("cut", [1, 100, referral.SEAL_LENGTH, referral.SEAL_LENGTH + 22, 5000])
def test_a_truncated_package_fails(full: Path, cut: int) -> None:
    result = verify_bytes(full.read_bytes()[:-cut])
    assert not result.ok and result.problems


def test_prepended_bytes_fail(full: Path, key: Ed25519PrivateKey) -> None:
    """Even re-sealed with the right key (as if the CERT's software had a bug), data before
    the first member is found: nothing may hide in a package."""
    data = full.read_bytes()
    resealed = _seal(b"MZ" + bytes(100) + data[: -referral.SEAL_LENGTH], key, placeholder=False)
    result = verify_bytes(resealed)
    assert not result.ok
    assert any("unexplained bytes" in p or "does not end" in p for p in result.problems), (
        result.problems
    )


def _zip(members: dict[str, bytes], *, seal_room: bool = True) -> bytes:
    """An archive from ``members`` with room for a seal in its comment (seekable: no data
    descriptors, unlike the packages, so both layouts are checked)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if seal_room:
            archive.comment = bytes(referral.SEAL_LENGTH)
    return buffer.getvalue()


def _seal(data: bytes, key: Ed25519PrivateKey, *, placeholder: bool = True) -> bytes:
    """Seal ``data`` as the documented scheme says, written here independently of the module:
    ``data`` ends with a seal-sized comment (replaced) or, without ``placeholder``, is
    everything before the comment."""
    prefix = data[: -referral.SEAL_LENGTH] if placeholder else data
    signature = key.sign(referral.SIGNED_CONTEXT + hashlib.sha512(prefix).digest())
    public = signing.public_key_bytes(key)
    seal = b"QORGAN-SIGNATURE v1 %s %s" % (base64.b64encode(public), base64.b64encode(signature))
    assert len(seal) == referral.SEAL_LENGTH
    return prefix + seal


def _repacked(full: Path, key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The package re-zipped with timeline.csv replaced and the manifest updated to match."""
    with zipfile.ZipFile(full) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
        comment = archive.comment
    forged_timeline = b"time,kind,actor,text\r\n2026-03-14T09:30:00+05:00,note,,nothing\r\n"
    members["timeline.csv"] = forged_timeline
    manifest = json.loads(members["manifest.json"])
    for member in manifest["members"]:
        if member["path"] == "timeline.csv":
            member["size"] = len(forged_timeline)
            member["sha256"] = hashlib.sha256(forged_timeline).hexdigest()
    members["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=2).encode()
    repacked = _zip(members)
    return repacked[: -referral.SEAL_LENGTH] + comment, repacked


def test_a_repacked_package_with_the_old_signature_fails(
    full: Path, key: Ed25519PrivateKey
) -> None:
    with_old_seal, _ = _repacked(full, key)
    result = verify_bytes(with_old_seal)
    assert not result.ok
    assert result.problems == [
        "the signature does not match the file: bytes were changed after it was signed"
    ]


def test_a_repacked_package_resigned_by_another_key_fails_when_pinned(
    full: Path, key: Ed25519PrivateKey
) -> None:
    _, repacked = _repacked(full, key)
    other = Ed25519PrivateKey.generate()
    resigned = _seal(repacked, other)
    loose = verify_bytes(resigned)
    # Without a pin it is intact *as signed by the other key*, and says whose key that is; the
    # manifest still names the CERT's key, which betrays it.
    assert loose.signer == signing.fingerprint(signing.public_key_bytes(other))
    assert loose.problems == ["the manifest names a different signer than the signature"]
    pinned = verify_bytes(resigned, public_key=signing.public_key_bytes(key))
    assert not pinned.ok
    assert pinned.problems[0].startswith(f"signed by key {loose.signer}, not by the expected key")


def test_a_package_signed_by_another_key_fails_when_the_key_is_pinned(
    tmp_path: Path, key: Ed25519PrivateKey, small: bytes
) -> None:
    other = Ed25519PrivateKey.generate()
    package = _build(_input(tmp_path, entries=2, evidence=False), other)
    assert verify_bytes(package).ok
    assert verify_bytes(package, public_key=signing.public_key_bytes(other)).ok
    result = verify_bytes(package, public_key=signing.public_key_bytes(key))
    assert not result.ok and len(result.problems) == 1
    assert "not by the expected key" in result.problems[0]
    assert verify_bytes(small, public_key=signing.public_key_bytes(key)).ok
    with pytest.raises(ReferralError, match="32 bytes"):
        verify_bytes(small, public_key=b"short")


def test_a_non_canonical_base64_seal_fails(small: bytes) -> None:
    """The key's last base64 character carries 2 unused bits: another spelling of the same key
    must not verify, or that byte of the file could change unnoticed."""
    data = bytearray(small)
    last_key_char = len(data) - referral.SEAL_LENGTH + len(referral.SEAL_PREFIX) + 42
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = alphabet.index(data[last_key_char])
    data[last_key_char] = alphabet[value ^ 0b01]
    assert base64.b64decode(bytes(data[-88 - 45 : -89])) == base64.b64decode(small[-88 - 45 : -89])
    result = verify_bytes(bytes(data))
    assert result.problems and "malformed" in result.problems[0]


# --- not packages at all ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "too short"),
        (b"%PDF-1.4\n" + bytes(1000), "not a ZIP archive"),
        (bytes(range(256)) * 50, "not a ZIP archive"),
        (_zip({"a.bin": NOISE}, seal_room=False), "does not end with a Qorgan signature"),
    ],
)
def test_files_that_are_not_packages_fail_clearly(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "package.zip"
    path.write_bytes(content)
    result = verify_package(path)
    assert not result.ok and result.signer == "" and result.manifest is None
    assert any(expected in p for p in result.problems), result.problems


def test_unreadable_paths_fail_clearly(tmp_path: Path) -> None:
    for path in (tmp_path / "missing.zip", tmp_path):
        result = verify_package(path)
        assert not result.ok and result.problems[0].startswith(f"cannot read {path}")


def test_a_sealed_zip_of_the_wrong_shape_lists_its_problems(key: Ed25519PrivateKey) -> None:
    result = verify_bytes(_seal(_zip({"../evil.sh": b"rm -rf /", "a.txt": b"x"}), key))
    assert not result.ok
    assert result.problems == [
        "member has an unsafe name: ../evil.sh",
        "the archive has no manifest.json",
    ]
    broken = verify_bytes(_seal(_zip({"manifest.json": b'{"format": "qorgan-referral"'}), key))
    assert broken.problems and broken.problems[0].startswith("manifest.json cannot be read")


def test_a_manifest_listing_a_huge_number_of_members_is_refused(key: Ed25519PrivateKey) -> None:
    members = [{"path": f"evidence/{i}", "size": 1, "sha256": "0" * 64} for i in range(50_000)]
    manifest = {
        "format": "qorgan-referral",
        "version": 1,
        "incident": "INC-2026-000001",
        "generated_at": "2026-03-15T04:30:00+00:00",
        "generated_by": "x",
        "language": "kk",
        "signature": {"public_key": base64.b64encode(signing.public_key_bytes(key)).decode()},
        "members": members,
    }
    started = time.perf_counter()
    result = verify_bytes(_seal(_zip({"manifest.json": json.dumps(manifest).encode()}), key))
    assert time.perf_counter() - started < 5
    assert not result.ok
    assert result.problems == [
        "manifest.json cannot be read: it lists 50000 members, more than the 10000 a package "
        "may hold"
    ]


def test_an_archive_with_a_huge_number_of_members_is_refused(key: Ed25519PrivateKey) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(referral.MAX_MEMBERS + 5):
            archive.writestr(f"m/{i}", b"")
        archive.comment = bytes(referral.SEAL_LENGTH)
    result = verify_bytes(_seal(buffer.getvalue(), key))
    assert result.problems == [
        "the archive declares 10005 members, more than the 10000 a package may hold; "
        "not read further"
    ]


def test_a_member_bigger_than_the_manifest_says_is_not_decompressed(
    key: Ed25519PrivateKey,
) -> None:
    """A bomb: 50 MB of zeros in 50 KB, listed as 1 byte. Refused from the sizes alone."""
    public = base64.b64encode(signing.public_key_bytes(key)).decode()
    manifest = {
        "format": "qorgan-referral",
        "version": 1,
        "incident": "INC-2026-000001",
        "generated_at": "2026-03-15T04:30:00+00:00",
        "generated_by": "x",
        "language": "ru",
        "signature": {"public_key": public},
        "members": [{"path": "bomb.bin", "size": 1, "sha256": "0" * 64}],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.bin", "w") as member:
            for _ in range(50):
                member.write(bytes(1_000_000))
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.comment = bytes(referral.SEAL_LENGTH)
    started = time.perf_counter()
    result = verify_bytes(_seal(buffer.getvalue(), key))
    assert time.perf_counter() - started < 2
    assert result.problems == ["bomb.bin is 50000000 bytes, the manifest says 1"]


# --- building refuses what it cannot state truthfully -----------------------------------------


def test_evidence_altered_in_the_store_stops_the_export(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data = _input(tmp_path, entries=2)
    data.evidence[1].path.write_bytes(b"root:x:0:0:root:/root:/bin/dash\n")  # same size
    out = io.BytesIO()
    with pytest.raises(ReferralError, match="no longer matches") as caught:
        build_package(data, signing_key=key, out=out)
    assert "tampered" in str(caught.value) and caught.value.source == str(data.evidence[1].path)
    assert not verify_bytes(out.getvalue()).ok  # what was written carries no seal

    data.evidence[1].path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 2)
    with pytest.raises(ReferralError, match="larger"):
        build_package(data, signing_key=key, out=io.BytesIO())
    data.evidence[1].path.unlink()
    with pytest.raises(ReferralError, match="missing from the store"):
        build_package(data, signing_key=key, out=io.BytesIO())


def test_naive_times_and_unknown_languages_are_refused(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data = _input(tmp_path, entries=2, evidence=False)
    naive = replace(data, generated_at=datetime(2026, 3, 15, 9, 0))  # noqa: DTZ001 - the point
    with pytest.raises(ReferralError, match="generated_at has no time zone"):
        build_package(naive, signing_key=key, out=io.BytesIO())
    with pytest.raises(ReferralError, match="language 'de'"):
        build_package(replace(data, language="de"), signing_key=key, out=io.BytesIO())


def test_evidence_names_are_made_safe() -> None:
    def path(name: str) -> str:
        return referral.evidence_path(EvidenceFile(name, "A" * 64, 1, Path("x"), None, T0))

    assert path("../../etc/passwd") == f"evidence/{'a' * 64}-passwd"
    assert path("C:\\Users\\Әлия\\құжат.docx") == f"evidence/{'a' * 64}-құжат.docx"
    assert path("invoice\u202efdp.exe") == f"evidence/{'a' * 64}-invoice_fdp.exe"
    assert path("...") == f"evidence/{'a' * 64}-file"
    long = path("ө" * 300 + ".pcapng")
    assert long.endswith(".pcapng") and len(long) == len("evidence/") + 65 + 100


# --- keys -------------------------------------------------------------------------------------


def test_signing_keys_are_saved_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "referral.pem"
    key = signing.load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = signing.load_or_create_signing_key(path)
    assert signing.public_key_bytes(again) == signing.public_key_bytes(key)
    with pytest.raises(SigningError, match="already exists"):
        signing.save_signing_key(signing.generate_signing_key(), path)
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(SigningError, match="not an unencrypted PEM private key"):
        signing.load_signing_key(tmp_path / "bad.pem")


def test_an_unusable_referral_key_fails_the_export_as_a_referral_error(tmp_path: Path) -> None:
    """The console answers a failed export by catching ReferralError: a key file that cannot be
    read must arrive as one, not as the key module's own SigningError."""
    from qorgan.incidents import referral_export

    (tmp_path / referral_export.KEY_FILE).write_text("not a key")
    with pytest.raises(ReferralError, match="not an unencrypted PEM private key") as caught:
        referral_export.signing_key(tmp_path)
    assert caught.value.source == str(tmp_path / referral_export.KEY_FILE)
    fresh = referral_export.signing_key(tmp_path / "new")
    assert signing.load_signing_key(tmp_path / "new" / referral_export.KEY_FILE) is not None
    assert isinstance(fresh, Ed25519PrivateKey)


def test_public_keys_load_from_pem_or_base64(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    raw = signing.public_key_bytes(key)
    (tmp_path / "k.pem").write_bytes(signing.public_key_pem(key))
    (tmp_path / "k.txt").write_text(base64.b64encode(raw).decode() + "\n")
    (tmp_path / "bad.txt").write_text("hello")
    assert signing.load_public_key(tmp_path / "k.pem") == raw
    assert signing.load_public_key(tmp_path / "k.txt") == raw
    with pytest.raises(SigningError, match="expected a PEM public key"):
        signing.load_public_key(tmp_path / "bad.txt")


# --- the command ------------------------------------------------------------------------------


def test_verify_export_command(tmp_path: Path, small: bytes, key: Ed25519PrivateKey) -> None:
    runner = CliRunner()
    package = tmp_path / "package.zip"
    package.write_bytes(small)
    (tmp_path / "cert.pem").write_bytes(signing.public_key_pem(key))
    (tmp_path / "other.pem").write_bytes(signing.public_key_pem(Ed25519PrivateKey.generate()))
    signer = signing.fingerprint(signing.public_key_bytes(key))

    result = runner.invoke(app, ["incidents", "verify-export", str(package)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"package intact, signed by {signer}\n"
    pinned = ["incidents", "verify-export", str(package), "--public-key"]
    assert runner.invoke(app, [*pinned, str(tmp_path / "cert.pem")]).exit_code == 0

    refused = runner.invoke(app, [*pinned, str(tmp_path / "other.pem")])
    assert refused.exit_code == 1
    assert refused.stdout.startswith(f"PROBLEM signed by key {signer}, not by the expected key")

    package.write_bytes(small[:1000] + bytes([small[1000] ^ 1]) + small[1001:])
    tampered = runner.invoke(app, ["incidents", "verify-export", str(package)])
    assert tampered.exit_code == 1
    assert "PROBLEM the signature does not match the file" in tampered.stdout
    assert "package NOT intact" in tampered.stderr

    unusable = runner.invoke(app, [*pinned, str(tmp_path / "missing.pem")])
    assert unusable.exit_code == 2 and "cannot read the public key" in unusable.stderr
