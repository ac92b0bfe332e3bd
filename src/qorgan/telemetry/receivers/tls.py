"""The TLS side of the receivers: a server :class:`ssl.SSLContext` from PEM files.

TLS 1.2 at least. Client certificates: ``"none"`` (not asked for), ``"optional"`` (asked for and
verified against ``ca`` when presented; a sender without one still connects) or ``"required"``
(a sender without a certificate signed by ``ca`` fails the handshake). The subject common name of
a verified client certificate is what :class:`~qorgan.telemetry.receivers.Peer` carries, for the
intake to tell sources apart.
"""

from __future__ import annotations

import ssl
from enum import StrEnum
from pathlib import Path

from qorgan.telemetry.errors import TelemetryError


class ClientCertificates(StrEnum):
    none = "none"
    optional = "optional"
    required = "required"


def server_context(
    cert: Path | str,
    key: Path | str,
    *,
    ca: Path | str | None = None,
    client_certificates: ClientCertificates | str = ClientCertificates.none,
) -> ssl.SSLContext:
    """A server context presenting ``cert`` (PEM, with its chain) and ``key``; client
    certificates verified against the ``ca`` bundle when asked for. Raises
    :class:`TelemetryError` naming the file that could not be used."""
    mode = ClientCertificates(client_certificates)
    if mode is not ClientCertificates.none and ca is None:
        raise TelemetryError(
            f"client certificates {mode.value}: a CA bundle is needed to verify them"
        )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TelemetryError(f"cannot use TLS certificate {cert} with key {key}: {exc}") from exc
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise TelemetryError(f"cannot use CA bundle {ca}: {exc}") from exc
    context.verify_mode = {
        ClientCertificates.none: ssl.CERT_NONE,
        ClientCertificates.optional: ssl.CERT_OPTIONAL,
        ClientCertificates.required: ssl.CERT_REQUIRED,
    }[mode]
    return context
