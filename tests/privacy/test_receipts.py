"""Signed consent receipts: what is signed verifies, and every change, every other key (when one
is pinned) and every malformed document is refused with a ReceiptError, never a crash."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from qorgan.cli import app
from qorgan.core import signing
from qorgan.core.settings import get_settings
from qorgan.privacy.receipts import (
    KEY_FILE,
    MAX_DOCUMENT_BYTES,
    Receipt,
    ReceiptError,
    receipt_key,
    sign_receipt,
    verify_document,
    verify_receipt,
)

from .examples import bin_number

T0 = datetime(2026, 3, 14, 4, 30, tzinfo=UTC)
RECORD_ID = "3f1c2b8e-5d6a-4e7f-9a0b-1c2d3e4f5a6b"
BIN = bin_number(yy=8, month=11, serial=2000)


def receipt(**changes: Any) -> Receipt:
    values: dict[str, Any] = {
        "record_id": RECORD_ID,
        "event": "given",
        "event_time": T0,
        "subject_id": "pn-7f3a9c2e41d05b68",
        "controller": {
            "name": "ГУ «Управление здравоохранения города Алматы»",
            "bin": BIN,
        },
        "processor": "Медицинская информационная система «Дамумед»",
        "purposes": ["оказание медицинской помощи", "медициналық статистика"],
        "legal_basis": "consent",
        "data": ["general: ФИО, дата рождения", "special: диагноз"],
        "term_until": date(2027, 3, 14),
        "third_party_transfer": False,
        "cross_border_transfer": False,
        "publication_in_public_sources": False,
        "withdrawable": True,
        "language": "ru",
    }
    values.update(changes)
    return Receipt(**values)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def signed(key: Ed25519PrivateKey) -> bytes:
    return sign_receipt(receipt(), key)


def _edit(document: bytes, change: Any) -> bytes:
    parsed = json.loads(document)
    change(parsed)
    return json.dumps(parsed, ensure_ascii=False).encode()


def _non_canonical(text: str) -> str:
    """The same bytes in another base64 spelling: padding bits of the last character set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = text.rstrip("=")
    index = alphabet.index(last[-1]) | 1
    spelled = last[:-1] + alphabet[index] + text[len(last) :]
    assert spelled != text and base64.b64decode(spelled) == base64.b64decode(text)
    return spelled


# --- signing and verifying --------------------------------------------------------------------


def test_a_signed_receipt_verifies_and_reads_back_equal(
    key: Ed25519PrivateKey, signed: bytes
) -> None:
    original = receipt()
    assert verify_receipt(signed) == original
    verified = verify_document(signed, public_key=signing.public_key_bytes(key))
    assert verified.receipt == original
    assert verified.fingerprint == signing.fingerprint(signing.public_key_bytes(key))

    document = json.loads(signed)
    assert list(document) == ["receipt", "signature"]
    body, seal = document["receipt"], document["signature"]
    assert body["schema_version"] == "qorgan-consent-receipt/1"
    assert body["event_time"] == "2026-03-14T04:30:00Z"
    assert body["term_until"] == "2027-03-14"
    assert body["jurisdiction"] == "KZ"
    assert body["controller"] == {
        "name": "ГУ «Управление здравоохранения города Алматы»",
        "bin": BIN,
    }
    assert set(seal) == {"algorithm", "public_key", "key_fingerprint", "value"}
    assert seal["algorithm"] == "Ed25519"
    assert base64.b64decode(seal["public_key"]) == signing.public_key_bytes(key)
    assert seal["key_fingerprint"] == verified.fingerprint

    # What is signed is the sorted, compact JSON (JCS for these values): reproducible by anyone.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert original.canonical_json() == canonical.encode()
    key.public_key().verify(base64.b64decode(seal["value"]), canonical.encode())


def test_the_layout_of_the_document_does_not_matter(signed: bytes) -> None:
    compact = orjson.dumps(orjson.loads(signed))
    assert verify_receipt(compact) == verify_receipt(signed)


def test_receipts_differ_by_record_id_and_times_become_utc() -> None:
    almaty = timezone(timedelta(hours=5))
    one = receipt(event_time=datetime(2026, 3, 14, 9, 30, tzinfo=almaty))
    assert one.event_time == T0 and one.to_json_dict()["event_time"] == "2026-03-14T04:30:00Z"
    fields = receipt().model_dump(exclude={"record_id"})
    made, again = Receipt(**fields), Receipt(**fields)
    assert made.record_id != again.record_id and RECORD_ID not in (made.record_id, again.record_id)
    withdrawn = receipt(event="withdrawn", term_until=None)
    assert verify_receipt(sign_receipt(withdrawn, Ed25519PrivateKey.generate())) == withdrawn


# --- what a receipt may hold ------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"subject_id": "900101350123"},  # a clear IIN
        {"subject_id": "a\x00b"},
        {"processor": "ЕИС\ud800"},
        {"purposes": ["лечение\x1b[31m"]},
        {"legal_basis": "consent\u202e"},
        {"purposes": []},
        {"purposes": ["x" * 501]},
        {"data": ["general"] * 65},
        {"subject_id": "x" * 129},
        {"processor": "   "},
        {"controller": {"name": "АО", "bin": "12345"}},
        {"controller": {"name": "АО", "bin": BIN[:-1] + str((int(BIN[-1]) + 1) % 10)}},
        {"controller": {"name": "АО", "bin": BIN, "address": "Астана"}},
        {"event": "refused"},
        {"event_time": datetime(2026, 3, 14, 4, 30)},  # noqa: DTZ001 - naive on purpose
        {"language": "de"},
        {"jurisdiction": "RU"},
        {"record_id": "not-a-uuid"},
        {"record_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},  # a UUID1
        {"withdrawable": "yes"},
        {"contact": "someone"},
    ],
)
def test_invalid_receipts_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        receipt(**changes)


def test_a_receipt_is_frozen() -> None:
    with pytest.raises(ValueError):
        receipt().event = "withdrawn"  # type: ignore[misc]


# --- tampering --------------------------------------------------------------------------------

#: For every field, a value a forger might put there (valid in itself where possible).
FORGED: dict[str, Any] = {
    "schema_version": "qorgan-consent-receipt/2",
    "record_id": "0b9d4b3a-2a4c-4b1e-9f53-2d6f0c1e8a7b",
    "event": "withdrawn",
    "event_time": "2026-03-14T04:30:01Z",
    "subject_id": "pn-0000000000000000",
    "controller": {"name": "ТОО «Другой оператор»", "bin": BIN},
    "processor": "Другая система",
    "purposes": ["оказание медицинской помощи", "маркетинг"],
    "legal_basis": "legal_obligation",
    "data": ["general: ФИО, дата рождения", "biometric: фото"],
    "term_until": None,
    "third_party_transfer": True,
    "cross_border_transfer": True,
    "publication_in_public_sources": True,
    "withdrawable": False,
    "jurisdiction": "KZ ",
    "language": "kk",
}


def test_every_field_is_covered_by_the_signature(signed: bytes) -> None:
    assert set(FORGED) == set(Receipt.model_fields)
    for name, value in FORGED.items():
        forged = _edit(signed, lambda d, n=name, v=value: d["receipt"].__setitem__(n, v))
        with pytest.raises(ReceiptError, match="does not match the receipt"):
            verify_receipt(forged)
        removed = _edit(signed, lambda d, n=name: d["receipt"].pop(n))
        with pytest.raises(ReceiptError, match="does not match the receipt"):
            verify_receipt(removed)
    for change in (
        lambda d: d["receipt"]["controller"].__setitem__("bin", bin_number(yy=9)),
        lambda d: d["receipt"]["purposes"].reverse(),
        lambda d: d["receipt"].__setitem__("extra", "x"),
    ):
        with pytest.raises(ReceiptError, match="does not match the receipt"):
            verify_receipt(_edit(signed, change))


def test_a_receipt_re_signed_by_another_key(key: Ed25519PrivateKey, signed: bytes) -> None:
    """A forger can re-sign a changed receipt with their own key: it verifies as theirs (the
    fingerprint shows it), and a pinned key refuses it."""
    other = Ed25519PrivateKey.generate()
    forged = sign_receipt(receipt(event="withdrawn"), other)
    assert verify_document(forged).fingerprint == signing.fingerprint(
        signing.public_key_bytes(other)
    )
    with pytest.raises(ReceiptError, match="not by the expected key") as caught:
        verify_receipt(forged, public_key=signing.public_key_bytes(key))
    assert signing.fingerprint(signing.public_key_bytes(key)) in str(caught.value)
    assert verify_receipt(signed, public_key=signing.public_key_bytes(key)) == receipt()

    # The key shown swapped for the pinned one: the signature no longer matches.
    swapped = _edit(
        forged,
        lambda d: d["signature"].update(
            public_key=base64.b64encode(signing.public_key_bytes(key)).decode(),
            key_fingerprint=signing.fingerprint(signing.public_key_bytes(key)),
        ),
    )
    with pytest.raises(ReceiptError, match="does not match"):
        verify_receipt(swapped, public_key=signing.public_key_bytes(key))
    with pytest.raises(ReceiptError, match="32 bytes"):
        verify_receipt(signed, public_key=b"short")


def test_a_signed_but_non_canonical_or_invalid_receipt_is_refused(key: Ed25519PrivateKey) -> None:
    """Valid signatures over receipts Receipt would not write (another spelling of a time, a
    value out of bounds) are refused too: one receipt, one spelling."""

    def signed_body(change: Any) -> bytes:
        body = receipt().to_json_dict()
        change(body)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        value = key.sign(canonical.encode())
        public = signing.public_key_bytes(key)
        seal = {
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(public).decode(),
            "key_fingerprint": signing.fingerprint(public),
            "value": base64.b64encode(value).decode(),
        }
        return json.dumps({"receipt": body, "signature": seal}).encode()

    assert verify_receipt(signed_body(lambda b: None)) == receipt()
    almaty = signed_body(lambda b: b.__setitem__("event_time", "2026-03-14T09:30:00+05:00"))
    with pytest.raises(ReceiptError, match="canonical form"):
        verify_receipt(almaty)
    with pytest.raises(ReceiptError, match=r"subject_id: .*clear IIN"):
        verify_receipt(signed_body(lambda b: b.__setitem__("subject_id", "900101350123")))
    with pytest.raises(ReceiptError, match="withdrawable"):
        verify_receipt(signed_body(lambda b: b.__setitem__("withdrawable", 1)))
    with pytest.raises(ReceiptError, match="values no receipt can hold"):
        verify_receipt(signed_body(lambda b: b.__setitem__("purposes", [2**70])))


# --- malformed documents ----------------------------------------------------------------------


def test_malformed_documents_are_refused_not_crashed_on(signed: bytes) -> None:
    parsed = json.loads(signed)
    seal = parsed["signature"]

    def with_seal(**changes: Any) -> bytes:
        return json.dumps({"receipt": parsed["receipt"], "signature": {**seal, **changes}}).encode()

    cases: dict[str, bytes] = {
        "not JSON": b"this is not JSON",
        "not UTF-8": b'{"receipt": "\xff"}',
        "empty": b"",
        "a JSON array": b"[1, 2, 3]",
        "a JSON string": b'"receipt"',
        "NaN": b'{"receipt": NaN, "signature": {}}',
        "no signature": json.dumps({"receipt": parsed["receipt"]}).encode(),
        "no receipt": json.dumps({"signature": seal}).encode(),
        "receipt not an object": json.dumps({"receipt": [], "signature": seal}).encode(),
        "signature not an object": json.dumps({**parsed, "signature": "x"}).encode(),
        "signature missing its value": json.dumps(
            {**parsed, "signature": {k: v for k, v in seal.items() if k != "value"}}
        ).encode(),
        "a third member": json.dumps({**parsed, "note": "x"}).encode(),
        "an unknown algorithm": with_seal(algorithm="RS256"),
        "base64 garbage": with_seal(value="!!!not base64!!!"),
        "non-canonical base64": with_seal(value=_non_canonical(seal["value"])),
        "a signature of the wrong length": with_seal(value=base64.b64encode(b"x" * 63).decode()),
        "a key of the wrong length": with_seal(public_key=base64.b64encode(b"k" * 31).decode()),
        "a number for the key": with_seal(public_key=12),
        "a non-ASCII key": with_seal(public_key="ключ"),
        "a fingerprint of another key": with_seal(key_fingerprint="0" * 32),
        "a duplicate key": signed.replace(b'"event": "given"', b'"event": "given", "event": "x"'),
        "deep nesting": b'{"receipt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "10 MB of JSON": b'{"receipt": {"subject_id": "' + b"x" * 10_000_000 + b'"}}',
        "a lone surrogate": signed.replace(b'"event": "given"', b'"event": "\\ud800"'),
    }
    assert cases["a duplicate key"] != signed and cases["a lone surrogate"] != signed
    for name, document in cases.items():
        with pytest.raises(ReceiptError) as caught:
            verify_receipt(document)
        assert str(caught.value), name
    with pytest.raises(ReceiptError, match="larger than"):
        verify_receipt(cases["10 MB of JSON"])
    with pytest.raises(ReceiptError, match="has no signature"):
        verify_receipt(cases["no signature"])
    with pytest.raises(ReceiptError, match="64-byte signature"):
        verify_receipt(cases["a signature of the wrong length"])
    assert len(cases["10 MB of JSON"]) > MAX_DOCUMENT_BYTES


def test_errors_do_not_repeat_the_receipts_values(key: Ed25519PrivateKey) -> None:
    body = receipt().to_json_dict()
    body["subject_id"] = "900101350123"
    value = key.sign(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))
    public = signing.public_key_bytes(key)
    document = orjson.dumps(
        {
            "receipt": body,
            "signature": {
                "algorithm": "Ed25519",
                "public_key": base64.b64encode(public).decode(),
                "key_fingerprint": signing.fingerprint(public),
                "value": base64.b64encode(value).decode(),
            },
        }
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(document)
    assert "900101350123" not in str(caught.value)


# --- the key ----------------------------------------------------------------------------------


def test_the_key_is_made_private_under_var_dir_when_not_configured(tmp_path: Path) -> None:
    settings = get_settings(var_dir=tmp_path / "var", privacy_signing_key=None)
    key = receipt_key(settings)
    path = tmp_path / "var" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    again = receipt_key(settings)
    assert signing.public_key_bytes(again) == signing.public_key_bytes(key)


def test_a_configured_key_is_used_and_must_exist(tmp_path: Path) -> None:
    configured = tmp_path / "keys" / "receipts.pem"
    signing.save_signing_key(Ed25519PrivateKey.generate(), configured)
    settings = get_settings(var_dir=tmp_path / "var", privacy_signing_key=configured)
    key = receipt_key(settings)
    assert signing.public_key_bytes(key) == signing.public_key_bytes(
        signing.load_signing_key(configured)
    )
    assert not (tmp_path / "var" / KEY_FILE).exists()

    missing = get_settings(var_dir=tmp_path / "var", privacy_signing_key=tmp_path / "nope.pem")
    with pytest.raises(ReceiptError, match="cannot read the signing key") as caught:
        receipt_key(missing)
    assert caught.value.source == str(tmp_path / "nope.pem")
    assert not (tmp_path / "nope.pem").exists()


def test_the_key_setting_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QORGAN_PRIVACY_SIGNING_KEY", str(tmp_path / "k.pem"))
    assert get_settings().privacy_signing_key == tmp_path / "k.pem"


# --- the command ------------------------------------------------------------------------------


def test_verify_receipt_command(tmp_path: Path, key: Ed25519PrivateKey, signed: bytes) -> None:
    runner = CliRunner()
    file = tmp_path / "receipt.json"
    file.write_bytes(signed)
    (tmp_path / "operator.pem").write_bytes(signing.public_key_pem(key))
    (tmp_path / "other.pem").write_bytes(signing.public_key_pem(Ed25519PrivateKey.generate()))
    fingerprint = signing.fingerprint(signing.public_key_bytes(key))
    record_id = json.loads(signed)["receipt"]["record_id"]

    good = runner.invoke(app, ["privacy", "verify-receipt", str(file)])
    assert good.exit_code == 0, good.output
    lines = good.stdout.splitlines()
    assert lines[0] == f"receipt {record_id}: consent given at 2026-03-14T04:30:00Z"
    assert f"controller: ГУ «Управление здравоохранения города Алматы» (BIN {BIN})" in lines
    assert "purposes: оказание медицинской помощи; медициналық статистика" in lines
    assert "term until: 2027-03-14" in lines
    assert lines[-1] == f"signature valid (key fingerprint {fingerprint})"
    assert good.stderr == ""

    pinned = ["privacy", "verify-receipt", str(file), "--public-key"]
    assert runner.invoke(app, [*pinned, str(tmp_path / "operator.pem")]).exit_code == 0
    refused = runner.invoke(app, [*pinned, str(tmp_path / "other.pem")])
    assert refused.exit_code == 1 and refused.stdout == ""
    assert f"signed by key {fingerprint}, not by the expected key" in refused.stderr

    file.write_bytes(signed.replace(b'"withdrawable": true', b'"withdrawable": false'))
    tampered = runner.invoke(app, ["privacy", "verify-receipt", str(file)])
    assert tampered.exit_code == 1 and tampered.stdout == ""
    assert "receipt NOT valid: the signature does not match the receipt" in tampered.stderr

    gone = runner.invoke(app, ["privacy", "verify-receipt", str(tmp_path / "missing.json")])
    assert gone.exit_code == 1 and "cannot read the receipt" in gone.stderr
    unusable = runner.invoke(app, [*pinned, str(tmp_path / "missing.pem")])
    assert unusable.exit_code == 2 and "cannot read the public key" in unusable.stderr
