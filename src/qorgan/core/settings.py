"""Typed settings from ``QORGAN_*`` environment variables, with the embedded defaults.

Nothing is read at import time: call :func:`get_settings` where an application or command is
built, and pass the result down, so tests can point everything at their own database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qorgan.core.errors import QorganError

#: Secrets that are obviously not secret; refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "secret-key",
        "secret_key",
        "password",
        "qorgan",
        "development",
        "dev",
        "test",
        "xxx",
    }
)
MIN_SECRET_LENGTH = 32


class SettingsError(QorganError):
    """The environment does not describe a usable configuration."""


class Environment(StrEnum):
    development = "development"
    production = "production"


class Settings(BaseSettings):
    """Where Qorgan keeps its state and how it behaves; see ``QORGAN_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="QORGAN_", extra="ignore", frozen=True)

    environment: Environment = Environment.development
    #: SQLAlchemy URL. The default is a SQLite file under ``./var/`` (created when needed);
    #: ``postgresql+psycopg://user:password@host/db`` for PostgreSQL.
    database_url: str = "sqlite:///var/qorgan.db"
    #: Signs sessions and CSRF tokens; required (and not a placeholder) in production.
    secret_key: SecretStr = SecretStr("")
    #: The privacy service's key for the keyed hashes (pseudonyms) of IINs: at least 32
    #: characters, never rotated in place (docs/privacy.md); required in production.
    privacy_hash_key: SecretStr = SecretStr("")
    #: Fernet keys that encrypt personal contacts at rest, comma-separated: the first
    #: encrypts, all decrypt (put a new one first to rotate); required in production.
    privacy_data_keys: SecretStr = SecretStr("")
    #: Years the privacy service keeps its own records once they stop mattering (access-log
    #: entries, answered complaints, ended consents whose data were deleted).
    privacy_retention_years: int = Field(default=5, ge=1, le=100)
    #: How times are shown; they are always stored in UTC.
    timezone: str = "Asia/Almaty"
    #: Where Qorgan keeps its files (uploads, evidence, the development secret key).
    var_dir: Path = Path("var")
    #: The working-day calendar (holidays, transferred days off) for incident deadlines: an
    #: administrator's YAML file in the format of ``qorgan/core/holidays_kz.yml``; unset, the
    #: bundled one.
    calendar_file: Path | None = None
    #: The folder of server-side log files the console may hunt over (nothing outside it).
    hunt_root: Path = Path("var/logs")
    #: The largest upload the console accepts for a hunt, in MiB.
    max_upload_mib: int = Field(default=512, ge=1)
    #: The largest evidence file an incident takes, in MiB (an upload's body may be 1 MiB more,
    #: for the form around the file).
    evidence_max_mib: int = Field(default=100, ge=1)
    #: The key that signs consent receipts (``QORGAN_PRIVACY_SIGNING_KEY``): an unencrypted PEM
    #: PKCS#8 Ed25519 private key file, which must exist. Unset, ``var_dir/privacy_signing_key.pem``
    #: is made on first use (mode 0600) and kept: replacing it makes earlier receipts look
    #: signed by a stranger, so back it up with the database.
    privacy_signing_key: Path | None = None
    #: Extra Sigma rule folders for console hunts, besides the built-in pack.
    rules: list[Path] = Field(default_factory=list)
    #: The address space a console hunt's process may use, in MiB; past it the hunt fails.
    hunt_memory_mib: int = Field(default=2048, ge=32)
    #: Processes a console hunt reads and matches files in (each with that address space);
    #: unset, the cores the hunt may run on.
    hunt_workers: int | None = Field(default=None, ge=1)
    #: The longest record (line, JSON document) a hunt reads, in MiB; longer ones are
    #: quarantined unread.
    hunt_max_record_mib: int = Field(default=4, ge=1)
    #: How much a gzip file may inflate to, in MiB, and how many times its compressed size;
    #: the rest of a file past either limit is quarantined unread.
    hunt_max_decompressed_mib: int = Field(default=8192, ge=1)
    hunt_max_compression_ratio: float = Field(default=100.0, ge=1)

    #: ``/metrics`` answers only with ``Authorization: Bearer <this token>``; without one (and
    #: without ``metrics_address``) it is not served at all.
    metrics_token: SecretStr | None = None
    #: Serve the metrics on a separate listener instead (``127.0.0.1:9108``), without a token:
    #: bind it to an address only the monitoring system reaches.
    metrics_address: str | None = None
    #: Addresses of reverse proxies whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are
    #: believed (e.g. ``127.0.0.1``); none by default, so a client cannot choose its address.
    trusted_proxies: list[str] = Field(default_factory=list)

    #: The console's address as users reach it; links in e-mails point there.
    public_url: str = "http://127.0.0.1:8000"
    #: Notification e-mail goes through this SMTP server; unset, e-mail is off (the console
    #: still notifies). ``smtp_from`` is then required; ``smtp_user`` and ``smtp_password``
    #: log in when set; ``smtp_starttls`` upgrades the connection to TLS before anything else.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str | None = None
    smtp_starttls: bool = True
    #: Seconds an SMTP conversation may stall before it counts as failed (and is retried).
    smtp_timeout: float = Field(default=30.0, gt=0)
    #: Seconds between the console's notification passes (deadline sweep, e-mail delivery).
    notify_interval: float = Field(default=60.0, ge=1)
    #: Leak notices by SMS go through this HTTP gateway (``qorgan.privacy.channels.sms``):
    #: a JSON POST with ``sms_gateway_token`` as a bearer token; unset, SMS notices wait.
    sms_gateway_url: str | None = None
    sms_gateway_token: SecretStr | None = None
    #: The sender name the gateway shows (an alpha name registered with the operator).
    sms_sender: str = "Qorgan"
    #: Seconds a gateway request may take before the attempt counts as failed (and is retried).
    sms_timeout: float = Field(default=10.0, gt=0)

    #: Live monitoring (``qorgan collect``, and ``qorgan serve`` in-process unless
    #: ``collect_in_serve`` is false): each listener as ``HOST:PORT``, empty to turn it off.
    #: Syslog over UDP and TCP share a port number; TLS needs ``collect_tls_cert`` and
    #: ``collect_tls_key`` (and ``collect_tls_ca`` to check client certificates, which
    #: ``collect_tls_client`` makes ``optional`` or ``required``).
    collect_udp: str | None = "127.0.0.1:5514"
    collect_tcp: str | None = "127.0.0.1:5514"
    collect_relp: str | None = "127.0.0.1:2514"
    collect_tls: str | None = None
    collect_tls_cert: Path | None = None
    collect_tls_key: Path | None = None
    collect_tls_ca: Path | None = None
    collect_tls_client: str = Field(default="optional", pattern="^(none|optional|required)$")
    #: RELP over TLS, with the TLS listener's certificate, key and client certificates.
    collect_relp_tls: bool = False
    #: HTTP ingest of ``qorgan collect`` (``qorgan serve`` takes it on its own port).
    collect_http: str | None = "127.0.0.1:8514"
    collect_in_serve: bool = True
    #: Partitions of the event log (fixed when the log is made): detection consumers.
    collect_partitions: int = Field(default=1, ge=1, le=64)
    #: Past this many messages not yet analysed (or this much log on disk), intake holds
    #: senders back (TCP and RELP stop reading, HTTP answers 429) or drops, per source.
    collect_max_lag: int = Field(default=1_000_000, ge=1)
    collect_max_log_mib: int = Field(default=4096, ge=1)
    #: Days of received messages kept in the Parquet archive under ``var_dir/events``
    #: (``qorgan hunt --archive``); 0 keeps no archive.
    archive_days: int = Field(default=30, ge=0)
    #: Organisations kept longer or shorter than ``archive_days``, as JSON:
    #: ``{"<organisation id>": <days>, ...}`` (0 keeps nothing of that organisation).
    archive_days_by_organisation: dict[int, int] = Field(default_factory=dict)
    #: ``make run``: replay the example logs into the in-process collector (see
    #: ``qorgan.demo_replay``), so the demo shows live monitoring.
    demo_replay: bool = False

    @field_validator("collect_udp", "collect_tcp", "collect_relp", "collect_tls", "collect_http")
    @classmethod
    def _listener(cls, value: str | None) -> str | None:
        if value is None or value.strip() == "":
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("metrics_address")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _smtp_sender(self) -> Settings:
        if self.smtp_host and not (self.smtp_from or "").strip():
            raise ValueError("QORGAN_SMTP_HOST is set without QORGAN_SMTP_FROM (the sender)")
        return self

    @property
    def email_enabled(self) -> bool:
        """Whether notifications go out by e-mail (an SMTP server is set)."""
        return bool(self.smtp_host)

    @model_validator(mode="after")
    def _real_secret_in_production(self) -> Settings:
        if self.environment is Environment.production:
            secret = self.secret_key.get_secret_value()
            if secret.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    "QORGAN_SECRET_KEY is empty or a placeholder; in production set it to a "
                    "random value, e.g. the output of: "
                    'python -c "import secrets; print(secrets.token_urlsafe(48))"'
                )
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"QORGAN_SECRET_KEY is shorter than {MIN_SECRET_LENGTH} characters; "
                    "in production use a long random value"
                )
        return self


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment (``overrides`` win); errors as :class:`SettingsError`."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        reasons = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise SettingsError(reasons, source="settings") from None


def secret_key(settings: Settings) -> bytes:
    """The key that signs CSRF tokens. Production requires ``QORGAN_SECRET_KEY``; development
    without one makes a random key once and keeps it in ``var_dir/secret_key`` (mode 0600), so
    sessions survive a restart."""
    value = settings.secret_key.get_secret_value()
    if value:
        return value.encode()
    return var_secret(settings, "secret_key", lambda: secrets.token_urlsafe(48)).encode()


def var_secret(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A development secret kept in ``var_dir/name`` (mode 0600): made by ``make`` the first
    time, read back afterwards (two processes starting at once end with the same one)."""
    path = settings.var_dir / name
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text("ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value)
    return value
