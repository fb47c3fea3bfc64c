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

import hashlib
import os
import re
import ssl

FINGERPRINT_ENV = "EDGEPRUNE_AGENT_FINGERPRINT"
CA_FILE_ENV = "EDGEPRUNE_AGENT_CA_FILE"
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


def fingerprint(der: bytes) -> str:
    """`sha256:<64 hex digits>` of a certificate in DER form (what a client pins)."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


def certificate_fingerprint(cert_path: str) -> str:
    """The fingerprint of the first certificate in a PEM file."""
    with open(cert_path, encoding="ascii", errors="replace") as f:
        text = f.read()
    end = "-----END CERTIFICATE-----"
    start = text.find("-----BEGIN CERTIFICATE-----")
    if start < 0 or end not in text[start:]:
        raise ValueError(f"--tls-cert {cert_path}: no PEM certificate in it")
    return fingerprint(ssl.PEM_cert_to_DER_cert(text[start:text.index(end, start) + len(end)]))


def normalize_fingerprint(text: str) -> str:
    """`sha256:ab12...`, `AB:12:...` (openssl's -fingerprint -sha256) or the bare hex: `sha256:<hex>`."""
    value = text.strip()
    low = value.lower()
    for prefix in ("sha256 fingerprint=", "sha256:", "sha256="):
        if low.startswith(prefix):
            low = low[len(prefix):]
            break
    digits = low.replace(":", "").replace(" ", "")
    if not _HEX64.fullmatch(digits):
        raise ValueError(f"certificate fingerprint {text!r}: expected sha256: and 64 hex digits, as the agent prints "
                         "it when it starts (or `openssl x509 -in agent.crt -noout -fingerprint -sha256`)")
    return "sha256:" + digits
