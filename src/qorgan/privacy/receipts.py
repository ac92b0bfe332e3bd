"""Signed consent receipts: what a data subject takes away when they give or withdraw consent
through the service, and can later show to anyone, who checks it without asking Qorgan.

The fields follow the consent record of ISO/IEC TS 27560 where they apply in Kazakhstan (Law
94-V on personal data): who the controller and the processing system are, the purposes, the
legal basis, the data, the term, and whether the data go to third parties, abroad or into
public sources. The subject appears only by a pseudonym the caller supplies (never the IIN:
a receipt is handed out and may be forwarded).

A signed receipt is one UTF-8 JSON document::

    {"receipt": {<the fields of Receipt>},
     "signature": {"algorithm": "Ed25519", "public_key": <base64 of the raw 32-byte key>,
                   "key_fingerprint": <qorgan.core.signing.fingerprint>,
                   "value": <base64 of the 64-byte signature>}}

The signature is over the receipt's canonical JSON: keys sorted, no whitespace, UTF-8, as
``orjson.dumps(receipt, option=OPT_SORT_KEYS)`` writes it. A receipt holds only strings,
booleans, null and lists, so that is also its RFC 8785 (JCS) form, which other tools can
reproduce. ``schema_version`` inside the signed bytes keeps a receipt signature from meaning
anything else. Verification is strict: one spelling per receipt (the fields must come back
exactly as :class:`Receipt` writes them), no duplicate keys, canonical base64, bounded size, so
two readers of one document can never see different receipts.

Without a pinned public key, a valid receipt proves only that it is unchanged since the key
shown signed it; whether that key is the operator's is for the reader to compare (the
fingerprint) or to pin. Pure: no database, no web; the key comes from :func:`receipt_key`.
"""

from __future__ import annotations

import base64
import json
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_serializer,
    field_validator,
)

from qorgan.core import signing
from qorgan.core.errors import QorganError
from qorgan.core.identifiers import is_valid_bin

if TYPE_CHECKING:
    from qorgan.core.settings import Settings

SCHEMA_VERSION = "qorgan-consent-receipt/1"
#: The key file under ``var_dir`` when ``QORGAN_PRIVACY_SIGNING_KEY`` is unset.
KEY_FILE = "privacy_signing_key.pem"
#: A signed receipt's largest size: the bounded fields below, in 4-byte characters, fit well.
MAX_DOCUMENT_BYTES = 256 * 1024

_SIGNATURE_KEYS = frozenset({"algorithm", "public_key", "key_fingerprint", "value"})
#: The layout of an IIN.
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")
#: Bidirectional embeddings, overrides and isolates: they make printed text read otherwise
#: than it is stored.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class ReceiptError(QorganError):
    """A receipt cannot be signed, or a document is not a valid signed receipt: the message
    says why (it never repeats the receipt's values)."""


def _text(value: str) -> str:
    """Printable text: no NUL or other control characters (the receipt is shown in terminals
    and PDFs), no lone surrogates (not Unicode, cannot be UTF-8), no bidi overrides, and not
    blank."""
    if not value.strip():
        raise ValueError("is blank")
    for char in value:
        kind = unicodedata.category(char)
        if kind == "Cs":
            raise ValueError("holds a lone surrogate (not Unicode text)")
        if kind == "Cc":
            raise ValueError("holds a control character (NUL, newline, escape, ...)")
        if char in _BIDI:
            raise ValueError("holds a bidirectional override character")
    return value


Name = Annotated[StrictStr, Field(min_length=1, max_length=300), AfterValidator(_text)]
Item = Annotated[StrictStr, Field(min_length=1, max_length=500), AfterValidator(_text)]


class Controller(BaseModel):
    """The operator who decides on the processing: its name and 12-digit BIN."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Name
    bin: StrictStr

    @field_validator("bin")
    @classmethod
    def _bin(cls, value: str) -> str:
        if not is_valid_bin(value):
            raise ValueError("is not a valid BIN (12 digits, a known layout, its check digit)")
        return value


class Receipt(BaseModel):
    """One consent event of one subject, as signed. Build it with the caller's values;
    ``record_id`` is made when not given. Lists are stored as tuples (the model is frozen)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal["qorgan-consent-receipt/1"] = SCHEMA_VERSION
    record_id: StrictStr = Field(default_factory=lambda: str(uuid.uuid4()))
    event: Literal["given", "withdrawn"]
    #: When the subject gave or withdrew consent; written as RFC 3339 UTC with ``Z``.
    event_time: AwareDatetime
    #: The caller's pseudonym of the subject (e.g. a keyed hash of the IIN), never the IIN.
    subject_id: Annotated[StrictStr, Field(min_length=1, max_length=128), AfterValidator(_text)]
    controller: Controller
    #: The information system that processes the data.
    processor: Name
    purposes: tuple[Item, ...] = Field(min_length=1, max_length=32)
    legal_basis: Annotated[StrictStr, Field(min_length=1, max_length=100), AfterValidator(_text)]
    #: The personal-data categories or items concerned.
    data: tuple[Item, ...] = Field(min_length=1, max_length=64)
    #: The last day of the consent's term; null when open-ended.
    term_until: date | None = None
    third_party_transfer: StrictBool
    cross_border_transfer: StrictBool
    publication_in_public_sources: StrictBool
    withdrawable: StrictBool
    jurisdiction: Literal["KZ"] = "KZ"
    language: Literal["kk", "ru", "en"]

    @field_validator("record_id")
    @classmethod
    def _uuid4(cls, value: str) -> str:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            raise ValueError("is not a UUID") from None
        if parsed.version != 4 or str(parsed) != value:
            raise ValueError("is not a UUID4 in its canonical lower-case form")
        return value

    @field_validator("event_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @field_validator("subject_id")
    @classmethod
    def _not_an_iin(cls, value: str) -> str:
        if _TWELVE_DIGITS.fullmatch(value.strip()):
            raise ValueError("looks like a clear IIN; give the subject's pseudonym instead")
        return value

    @field_serializer("event_time")
    def _rfc3339(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def to_json_dict(self) -> dict[str, Any]:
        """The receipt as it stands in the signed document (field order for people)."""
        return self.model_dump(mode="json")

    def canonical_json(self) -> bytes:
        """The bytes the signature covers."""
        return orjson.dumps(self.to_json_dict(), option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose signature checked out, and the key that made it."""

    receipt: Receipt
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return signing.fingerprint(self.public_key)


def receipt_key(settings: Settings) -> Ed25519PrivateKey:
    """The key that signs receipts: ``QORGAN_PRIVACY_SIGNING_KEY`` when set (the file must
    exist), else ``var_dir/privacy_signing_key.pem``, made on first use (mode 0600)."""
    try:
        if settings.privacy_signing_key is not None:
            return signing.load_signing_key(settings.privacy_signing_key)
        return signing.load_or_create_signing_key(settings.var_dir / KEY_FILE)
    except signing.SigningError as exc:
        raise ReceiptError(exc.message, source=exc.source) from exc


def sign_receipt(receipt: Receipt, key: Ed25519PrivateKey) -> bytes:
    """The signed receipt document (UTF-8 JSON, indented for people; the signature does not
    depend on the layout)."""
    public = signing.public_key_bytes(key)
    document = {
        "receipt": receipt.to_json_dict(),
        "signature": {
            "algorithm": "Ed25519",
            "public_key": _b64(public),
            "key_fingerprint": signing.fingerprint(public),
            "value": _b64(key.sign(receipt.canonical_json())),
        },
    }
    signed = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    if len(signed) > MAX_DOCUMENT_BYTES:  # cannot happen within the field bounds; never emit one
        raise ReceiptError(f"the signed receipt would exceed {MAX_DOCUMENT_BYTES:,} bytes")
    return signed


def verify_receipt(document: bytes, *, public_key: bytes | None = None) -> Receipt:
    """The receipt in ``document`` once its signature is checked with the key it carries and,
    when ``public_key`` (32 raw bytes) is given, that key is the pinned one; else
    :class:`ReceiptError` saying why."""
    return verify_document(document, public_key=public_key).receipt


def verify_file(path: Path, *, public_key: bytes | None = None) -> VerifiedReceipt:
    """:func:`verify_document` on a file, read no further than a receipt can be long."""
    try:
        with path.open("rb") as handle:
            document = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ReceiptError(f"cannot read the receipt: {exc.strerror}", source=str(path)) from exc
    return verify_document(document, public_key=public_key)


def verify_document(document: bytes, *, public_key: bytes | None = None) -> VerifiedReceipt:
    """As :func:`verify_receipt`, also giving the signer's key (for its fingerprint)."""
    if public_key is not None and len(public_key) != signing.PUBLIC_KEY_BYTES:
        raise ReceiptError("a pinned Ed25519 public key is 32 bytes")
    if len(document) > MAX_DOCUMENT_BYTES:
        raise ReceiptError(
            f"the document is larger than the {MAX_DOCUMENT_BYTES:,} bytes a receipt may take"
        )
    parsed = _parse(document)
    if not isinstance(parsed, dict):
        raise ReceiptError("the document is not a JSON object")
    for part in ("receipt", "signature"):
        if part not in parsed:
            raise ReceiptError(f"the document has no {part}")
    if len(parsed) != 2:
        raise ReceiptError("the document holds more than a receipt and its signature")
    body, seal = parsed["receipt"], parsed["signature"]
    if not isinstance(body, dict):
        raise ReceiptError("the receipt is not a JSON object")
    public, value = _signature(seal)
    try:
        signed = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        raise ReceiptError("the receipt holds values no receipt can hold") from None
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(value, signed)
    except InvalidSignature:
        raise ReceiptError(
            "the signature does not match the receipt: it was changed after it was signed"
        ) from None
    except ValueError:
        raise ReceiptError("the public key in the signature is not a valid Ed25519 key") from None
    if public_key is not None and public != public_key:
        raise ReceiptError(
            f"signed by key {signing.fingerprint(public)}, "
            f"not by the expected key {signing.fingerprint(public_key)}"
        )
    try:
        receipt = Receipt.model_validate_json(signed)
    except ValidationError as exc:
        raise ReceiptError(f"the signed receipt is not valid: {_reasons(exc)}") from None
    if receipt.canonical_json() != signed:
        raise ReceiptError(
            "the signed receipt is not in its canonical form (a time not in UTC with Z, "
            "or another spelling of a value)"
        )
    return VerifiedReceipt(receipt, public)


def _parse(document: bytes) -> object:
    """Strict JSON: UTF-8, no duplicate keys (two readers could take different ones), no NaN."""
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        raise ReceiptError("the document is not UTF-8 text") from None
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ReceiptError(f"the document is not JSON ({exc.msg} at {exc.pos})") from None
    except RecursionError:
        raise ReceiptError("the document is nested too deeply to be a receipt") from None
    except ValueError as exc:
        raise ReceiptError(f"the document is not a receipt's JSON: {exc}") from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice in one object")
    return dict(pairs)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _signature(seal: object) -> tuple[bytes, bytes]:
    """The raw public key and signature, parsed strictly (canonical base64, exact lengths), and
    the fingerprint shown must be the key's: a reader compares that text, not the key."""
    if not isinstance(seal, dict):
        raise ReceiptError("the signature is not a JSON object")
    missing = sorted(_SIGNATURE_KEYS - seal.keys())
    if missing:
        raise ReceiptError(f"the signature has no {', '.join(missing)}")
    if len(seal) != len(_SIGNATURE_KEYS):
        raise ReceiptError("the signature holds more than " + ", ".join(sorted(_SIGNATURE_KEYS)))
    if seal["algorithm"] != "Ed25519":
        raise ReceiptError("the signature's algorithm is not Ed25519")
    public = _unb64(seal["public_key"], signing.PUBLIC_KEY_BYTES)
    if public is None:
        raise ReceiptError("the signature's public key is not the base64 of a 32-byte key")
    value = _unb64(seal["value"], signing.SIGNATURE_BYTES)
    if value is None:
        raise ReceiptError("the signature value is not the base64 of a 64-byte signature")
    if seal["key_fingerprint"] != signing.fingerprint(public):
        raise ReceiptError("the signature's key fingerprint is not that of its public key")
    return public, value


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _unb64(text: object, length: int) -> bytes | None:
    if not isinstance(text, str) or not text.isascii():
        return None
    return signing.decode_base64(text.encode("ascii"), length)


def _reasons(exc: ValidationError) -> str:
    """Where and what, never the offending value (it may be personal data)."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'receipt'}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False, include_input=False)
    )
