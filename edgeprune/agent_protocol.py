"""What the device agent and its client agree on: where the token and the TLS pin come
from, and how a certificate's fingerprint is written. Standard library only: the
agent's one-file bundle carries this module (the agent imports it from here, the
client beside it)."""
from __future__ import annotations

import hashlib
import re

TOKEN_ENV = "EDGEPRUNE_AGENT_TOKEN"
FINGERPRINT_ENV = "EDGEPRUNE_AGENT_FINGERPRINT"
CA_FILE_ENV = "EDGEPRUNE_AGENT_CA_FILE"
_HEX64 = re.compile(r"[0-9a-f]{64}")


def fingerprint(der: bytes) -> str:
    """`sha256:<64 hex digits>` of a certificate in DER form (what a client pins)."""
    return "sha256:" + hashlib.sha256(der).hexdigest()


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
