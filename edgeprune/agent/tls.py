"""TLS for the agent (stdlib `ssl`): the server's context, and the certificate
fingerprint that a client pins when the certificate is self-signed.

A self-signed certificate for a device at 192.168.1.20 (or use your own CA's):

    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \\
        -subj /CN=edgeprune-agent -addext subjectAltName=IP:192.168.1.20 -keyout agent.key -out agent.crt
    python3 edgeprune-agent.pyz --host 0.0.0.0 --tls-cert agent.crt --tls-key agent.key

The agent prints the certificate's fingerprint (sha256:...) when it starts; give it
to the client (`AgentClient(url, fingerprint=...)`, or EDGEPRUNE_AGENT_FINGERPRINT
for `edgeprune latency --device https://...` and sweeps).
"""
from __future__ import annotations

import os
import ssl

from ..agent_protocol import CA_FILE_ENV, FINGERPRINT_ENV, fingerprint, normalize_fingerprint  # noqa: F401


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """TLS 1.2 or later with the certificate chain in `cert` and its key in `key` (PEM)."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.path.isfile(path):
            raise ValueError(f"{flag} {path} not found; give --tls-cert CERT.pem --tls-key KEY.pem")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert, key, password=lambda: b"")    # an encrypted key fails here, never prompts
    except (ssl.SSLError, OSError) as e:
        reason = e.reason if isinstance(e, ssl.SSLError) else e.strerror     # (OpenSSL's "PEM lib" says nothing)
        raise ValueError(f"cannot use --tls-cert {cert} with --tls-key {key}"
                         f"{f' ({reason})' if reason else ''}: give a PEM certificate and its own private key, "
                         "unencrypted") from None
    return ctx


def certificate_fingerprint(cert_path: str) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    with open(cert_path, encoding="ascii", errors="replace") as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    if start < 0 or end not in text[start:]:
        raise ValueError(f"--tls-cert {cert_path}: no PEM certificate in it")
    return fingerprint(ssl.PEM_cert_to_DER_cert(text[start:text.index(end, start) + len(end)]))
