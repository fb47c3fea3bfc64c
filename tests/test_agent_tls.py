"""The device agent over TLS (issue 21, item 3), on loopback with a self-signed certificate
made here: pinned fingerprint, CA file, the errors that say what to do, and the
`edgeprune latency --device https://...` command."""
import datetime
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeprune.agent import make_server
from edgeprune.agent.tls import CA_FILE_ENV, FINGERPRINT_ENV, certificate_fingerprint, normalize_fingerprint
from edgeprune.measure import AgentClient, AgentError

TOKEN = "tls-test-token-0123456789abcdef"
# the command tls.py documents (and the agent's --tls-cert help), on this loopback address
OPENSSL_ARGS = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                "-subj", "/CN=edgeprune-agent", "-addext", "subjectAltName=IP:127.0.0.1"]


def _with_cryptography(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgeprune-agent")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pkey.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)   # as openssl's
                   .sign(pkey, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _with_openssl(cert: Path, key: Path) -> None:
    subprocess.run([shutil.which("openssl"), *OPENSSL_ARGS, "-keyout", str(key), "-out", str(cert)], check=True,
                   capture_output=True, timeout=60)


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "agent.crt", folder / "agent.key"
    try:
        _with_cryptography(cert, key)
    except ImportError:
        if not shutil.which("openssl"):
            reason = "no `cryptography` package and no `openssl` command: cannot make a test certificate"
            print(f"skipped: {reason}")
            pytest.skip(reason)
        _with_openssl(cert, key)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype("float32"), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["input", "w"], ["y"], pads=[1, 1, 1, 1])], "tiny",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], [w])
    path = tmp_path_factory.mktemp("model") / "tiny.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return path


@pytest.fixture(scope="module")
def agent(pki):
    cert, key = pki
    server = make_server("127.0.0.1", 0, TOKEN, tls_cert=str(cert), tls_key=str(key), quiet=True, header_timeout=2.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def _no_tls_env(monkeypatch):
    monkeypatch.delenv(FINGERPRINT_ENV, raising=False)
    monkeypatch.delenv(CA_FILE_ENV, raising=False)


def _der_fingerprint(cert: Path) -> str:
    import hashlib
    return "sha256:" + hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.read_text())).hexdigest()


def test_pinned_fingerprint_benchmarks_over_https(agent, pki, model):
    cert, _ = pki
    assert agent.url.startswith("https://127.0.0.1:") and agent.tls_fingerprint == _der_fingerprint(cert)
    client = AgentClient(agent.url, token=TOKEN, fingerprint=agent.tls_fingerprint)
    assert client.health()["ok"] and client.info()["tls"] is True
    r = client.benchmark(model, repeats=3)
    assert r["repeats"] == 3 and r["median_ms"] > 0
    # openssl's way of printing it (upper case, colons) pins the same certificate
    colons = ":".join(agent.tls_fingerprint[7:][i:i + 2] for i in range(0, 64, 2)).upper()
    assert AgentClient(agent.url, token=TOKEN, fingerprint=f"SHA256 Fingerprint={colons}").health()["ok"]


def test_ca_file_verifies_chain_and_host(agent, pki, model):
    cert, _ = pki
    assert AgentClient(agent.url, token=TOKEN, ca_file=cert).benchmark(model, repeats=2)["repeats"] == 2
    port = agent.server_address[1]
    with pytest.raises(AgentError) as e:        # the certificate names 127.0.0.1, not localhost
        AgentClient(f"https://localhost:{port}", token=TOKEN, ca_file=cert).health()
    assert e.value.status == 495 and str(cert) in str(e.value)


def test_self_signed_without_pin_or_ca_says_how(agent):
    with pytest.raises(AgentError) as e:
        AgentClient(agent.url, token=TOKEN).info()
    message = str(e.value)
    assert e.value.status == 495 and "\n" not in message
    assert FINGERPRINT_ENV in message and CA_FILE_ENV in message and "fingerprint=" in message


def test_a_wrong_pin_is_refused_before_the_token_is_sent(pki):
    """A server with the right name but another certificate (or an impostor): the client hangs up after the
    handshake, without sending the request, so the token never reaches it."""
    cert, key = pki
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = []

    def impostor():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.settimeout(10)
            data = b""
            try:
                while chunk := tls.recv(4096):
                    data += chunk
            except (OSError, ssl.SSLError):
                pass
            received.append(data)

    t = threading.Thread(target=impostor, daemon=True)
    t.start()
    with pytest.raises(AgentError) as e:
        AgentClient(f"https://127.0.0.1:{port}", token=TOKEN, fingerprint="sha256:" + "ab" * 32).info()
    t.join(timeout=10)
    listener.close()
    assert e.value.status == 495 and "pinned" in str(e.value) and certificate_fingerprint(str(cert)) in str(e.value)
    assert received == [b""]                    # nothing: no request line, no token


def test_the_fingerprint_from_the_environment_and_the_latency_command(agent, model, monkeypatch, capsys):
    """`edgeprune latency --device https://...` pins the certificate given in EDGEPRUNE_AGENT_FINGERPRINT;
    without it, one line saying how, exit 2."""
    from edgeprune.cli import main
    monkeypatch.setenv("EDGEPRUNE_AGENT_TOKEN", TOKEN)
    assert main(["latency", str(model), "--repeats", "2", "--device", agent.url]) == 2
    err = capsys.readouterr().err.strip()
    assert FINGERPRINT_ENV in err and len(err.splitlines()) == 1, err
    monkeypatch.setenv(FINGERPRINT_ENV, agent.tls_fingerprint)
    assert main(["latency", str(model), "--repeats", "2", "--ci", "0", "--device", agent.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repeats"] == 2


def test_scheme_mix_ups_are_explained(agent, pki):
    port = agent.server_address[1]
    with pytest.raises(AgentError) as e:        # plain HTTP to the TLS agent: a plain answer saying so
        AgentClient(f"http://127.0.0.1:{port}", token=TOKEN).health()
    assert e.value.status == 400 and "https://" in str(e.value)
    with pytest.raises(ValueError, match="https://"):    # a pin with an http URL: never send the token in clear
        AgentClient(f"http://127.0.0.1:{port}", token=TOKEN, fingerprint=agent.tls_fingerprint)
    plain = make_server("127.0.0.1", 0, TOKEN, quiet=True)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    try:
        with pytest.raises(AgentError) as e:    # https to a plain agent
            AgentClient(f"https://127.0.0.1:{plain.server_address[1]}", token=TOKEN,
                        fingerprint=agent.tls_fingerprint).health()
        assert "--tls-cert" in str(e.value) and "http://" in str(e.value)
    finally:
        plain.shutdown()
        plain.server_close()
    with pytest.raises(ValueError, match="64 hex digits"):
        normalize_fingerprint("sha256:1234")
    with pytest.raises(ValueError, match="not found"):
        AgentClient(agent.url, token=TOKEN, ca_file="/nonexistent/ca.pem")


def test_a_silent_tls_client_is_cut_at_the_header_deadline(agent):
    import time
    s = socket.create_connection(("127.0.0.1", agent.server_address[1]), timeout=10)
    t0 = time.monotonic()
    assert s.recv(1) == b"" and time.monotonic() - t0 < 3.5     # no handshake within 2 s: hung up
    s.close()


def test_tls_start_problems_are_one_line(tmp_path, pki):
    cert, key = pki
    other_cert, other_key = self_signed(tmp_path)
    env = {"EDGEPRUNE_AGENT_TOKEN": TOKEN}
    cases = [(["--tls-cert", str(cert)], "both --tls-cert and --tls-key"),
             (["--tls-cert", str(tmp_path / "none.crt"), "--tls-key", str(key)], "not found"),
             (["--tls-cert", str(cert), "--tls-key", str(other_key)], "its own private key")]
    import os
    for args, message in cases:
        done = subprocess.run([sys.executable, "-m", "edgeprune.agent", "--port", "0", *args], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, **env))
        assert done.returncode != 0 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, \
            done.stderr


@pytest.mark.skipif(not shutil.which("openssl"), reason="no `openssl` command")
def test_the_documented_openssl_command_makes_a_certificate_the_agent_serves(tmp_path, model):
    cert, key = tmp_path / "agent.crt", tmp_path / "agent.key"
    _with_openssl(cert, key)
    server = make_server("127.0.0.1", 0, TOKEN, tls_cert=str(cert), tls_key=str(key), quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert AgentClient(server.url, token=TOKEN, ca_file=cert).benchmark(model, repeats=2)["repeats"] == 2
    finally:
        server.shutdown()
        server.server_close()
