"""`edgeprune agent` on loopback: round trip, auth, limits, bad input, concurrency,
and that it runs where torch is not installed."""
import http.client
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from edgeprune.deploy import export_onnx
from edgeprune.measure import AgentClient, AgentError
from edgeprune.agent import TOKEN_ENV, make_server

import tiny_models



TOKEN = "test-token-0123456789abcdef"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("agent") / "tiny.onnx"
    export_onnx(tiny_models.tiny_cnn(10), path, 32)
    return path


def _serve(**kw):
    server = make_server("127.0.0.1", 0, TOKEN, quiet=True, **kw)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(scope="module")
def agent():
    server, thread = _serve(max_upload_mb=2.0, bench_timeout=60, read_timeout=10)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _post(url: str, body: bytes, token: str = TOKEN, query: str = "repeats=2") -> tuple[int, dict]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", f"/benchmark?{query}", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


def test_benchmark_round_trip_returns_stats_and_device(agent, onnx_model):
    client = AgentClient(agent.url, token=TOKEN)
    assert client.health() == {"ok": True, "api": 1}
    info = client.info()
    assert info["cores"] >= 1 and info["onnxruntime"] and "CPUExecutionProvider" in info["providers"]
    r = client.benchmark(onnx_model, threads=1, warmup=1, repeats=5)
    assert r["repeats"] == 5 and 0 < r["median_ms"] <= r["p90_ms"] <= r["max_ms"]
    assert r["input_shapes"] == {"input": [1, 3, 32, 32]} and r["device"]["cpu"] == info["cpu"]
    assert r["round_trip_s"] >= r["agent_seconds"] > 0


def test_wrong_or_missing_token_is_401(agent, onnx_model):
    status, body = _post(agent.url, onnx_model.read_bytes(), token="wrong-token")
    assert status == 401 and "token" in body["error"]
    with pytest.raises(AgentError) as e:
        AgentClient(agent.url, token="nope").info()
    assert e.value.status == 401
    with pytest.raises(AgentError, match=TOKEN_ENV):
        AgentClient(agent.url, token="").info()


def test_oversized_upload_is_413(agent, onnx_model):
    status, body = _post(agent.url, b"\0" * (3 * 1024 * 1024))
    assert status == 413 and "limit" in body["error"]
    with pytest.raises(AgentError) as e:   # the client checks the limit before uploading
        AgentClient(agent.url, token=TOKEN).benchmark(b"\0" * (3 * 1024 * 1024))
    assert e.value.status == 413


def test_garbage_is_400_and_the_agent_keeps_serving(agent, onnx_model):
    status, body = _post(agent.url, b"this is not an onnx model" * 10)
    assert status == 400 and "failed to load" in body["error"]
    status, body = _post(agent.url, onnx_model.read_bytes(), query="repeats=lots")
    assert status == 400 and "repeats" in body["error"]
    status, body = _post(agent.url, onnx_model.read_bytes(), query="threads=0")
    assert status == 400
    status, body = _post(agent.url, onnx_model.read_bytes())
    assert status == 200 and body["repeats"] == 2


def test_two_concurrent_requests_run_one_at_a_time(agent, onnx_model):
    client = AgentClient(agent.url, token=TOKEN)
    results = [None, None]

    def go(i):
        results[i] = client.benchmark(onnx_model, warmup=0, repeats=50)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    a, b = sorted(results, key=lambda r: r["agent_started"])
    assert a["agent_finished"] <= b["agent_started"]          # queued, not overlapped


def test_a_busy_agent_answers_503_when_the_queue_wait_runs_out(onnx_model):
    server, thread = _serve(queue_timeout=0.05, max_queue=1)
    try:
        server.bench_lock.acquire()        # as if a long benchmark were running
        status, body = _post(server.url, onnx_model.read_bytes())
        assert status == 503 and "busy" in body["error"]
        server.reserve()                   # the running one's place
        server.reserve()                   # and one more waiting: the queue is full
        status, body = _post(server.url, onnx_model.read_bytes())
        assert status == 503 and "queue is full" in body["error"]
        server.release()
        server.release()
        server.bench_lock.release()
        status, body = _post(server.url, onnx_model.read_bytes())   # free again
        assert status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_agent_module_runs_without_torch(tmp_path, onnx_model):
    """`python -m edgeprune.agent` with torch made unimportable: it serves and benchmarks."""
    blocker = tmp_path / "block" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not installed (test)')\n")
    env = dict(os.environ, PYTHONPATH=f"{blocker.parent}{os.pathsep}{ROOT}", **{TOKEN_ENV: TOKEN})
    proc = subprocess.Popen([sys.executable, "-m", "edgeprune.agent", "--port", "0", "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split("listening on ")[1].split()[0]
        r = AgentClient(url, token=TOKEN).benchmark(onnx_model, repeats=3)
        assert r["repeats"] == 3 and r["device"]["onnxruntime"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # without a token it refuses to start, saying how to set one
    env.pop(TOKEN_ENV)
    done = subprocess.run([sys.executable, "-m", "edgeprune.agent", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode != 0 and TOKEN_ENV in done.stderr


def test_agent_file_alone_and_the_latency_command(tmp_path, onnx_model, agent, monkeypatch, capsys):
    """The one-file agent (`edgeprune agent --bundle`, as copied onto a device) runs on
    its own; `edgeprune latency` times a model here and through an agent."""
    from edgeprune.cli import main
    assert main(["agent", "--bundle", str(tmp_path / "edgeprune-agent.pyz")]) == 0
    elsewhere = tmp_path / "device"
    elsewhere.mkdir()
    (tmp_path / "edgeprune-agent.pyz").rename(elsewhere / "edgeprune-agent.pyz")
    done = subprocess.run([sys.executable, "-I", "-S", "edgeprune-agent.pyz", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=elsewhere)       # -I -S: no site-packages, no edgeprune
    assert done.returncode == 0 and "--max-upload-mb" in done.stdout, done.stderr
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert main(["latency", str(onnx_model), "--repeats", "3"]) == 0
    assert "median" in capsys.readouterr().out
    assert main(["latency", str(onnx_model), "--repeats", "3", "--ci", "0", "--device", agent.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repeats"] == 3
    monkeypatch.setenv(TOKEN_ENV, "wrong-token-wrong-token")
    assert main(["latency", str(onnx_model), "--device", agent.url]) == 2


# -- slow and hostile clients ---------------------------------------------------------------------------------------
def _drip(url: str, head: bytes, seconds: float) -> bytes:
    """Send `head` a byte at a time, one every 0.05 s, for at most `seconds`; what the agent answered (b'' if it
    just hung up)."""
    import socket
    import time
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        end = time.monotonic() + seconds
        for b in head:
            if time.monotonic() > end:
                break
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            time.sleep(0.05)
        try:
            return s.recv(4096)
        except OSError:
            return b""
    finally:
        s.close()


def test_a_drip_fed_request_is_cut_off_at_its_deadline():
    import time
    server, thread = _serve(request_timeout=1.0, read_timeout=30)
    try:
        t0 = time.monotonic()
        got = _drip(server.url, b"GET /info HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 500 + b"\r\n\r\n", 20)
        assert time.monotonic() - t0 < 6 and b"200" not in got        # cut off, not served after 25 s of dripping
        assert AgentClient(server.url, token=TOKEN).health()["ok"]     # and the agent still serves
    finally:
        server.shutdown()
        server.server_close()


def test_only_token_holders_take_places_and_those_beyond_the_cap_get_503(onnx_model):
    """Only a token holder's upload takes one of the `max_connections` places: idle connections without the token
    take none (/health and a benchmark are served beside them); once two stalled uploads hold both places, a third
    token holder gets 503 with Retry-After, its body read first so that it sees the answer."""
    import socket
    server, thread = _serve(max_connections=2, request_timeout=10)
    host, port = server.url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(2)]     # no token: hold no place
    try:
        import time
        time.sleep(0.3)
        third = socket.create_connection((host, int(port)), timeout=5)
        third.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"200" in third.recv(4096).split(b"\r\n")[0]
        third.close()
        assert _post(server.url, onnx_model.read_bytes())[0] == 200
        for _ in range(2):                                                     # token holders: they do
            s = socket.create_connection((host, int(port)))
            s.sendall(f"POST /benchmark HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      f"Content-Length: 100000\r\n\r\n".encode())
            idle.append(s)
        deadline = time.monotonic() + 30          # until both hold their place (CI once needed over 5 s)
        while server.gate.counts()["trusted"] != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.gate.counts()["trusted"] == 2, server.gate.counts()
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("POST", "/benchmark", body=onnx_model.read_bytes(), headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        assert resp.status == 503 and resp.getheader("Retry-After") and b"busy" in resp.read()
        conn.close()
    finally:
        for s in idle:
            s.close()
        server.shutdown()
        server.server_close()


def test_slow_authenticated_uploads_do_not_block_a_benchmark(onnx_model):
    """Uploads queue for a benchmark only once complete: four clients stalling mid-upload
    leave the queue (max_queue 1) free for a real request."""
    import socket
    server, thread = _serve(max_queue=1, max_connections=8, request_timeout=30)
    host, port = server.url.removeprefix("http://").split(":")
    stalled = []
    try:
        for _ in range(4):
            s = socket.create_connection((host, int(port)))
            s.sendall(f"POST /benchmark HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      f"Content-Length: 100000\r\n\r\n".encode() + b"\0" * 10)
            stalled.append(s)
        r = AgentClient(server.url, token=TOKEN, busy_wait=0).benchmark(onnx_model, repeats=2)
        assert r["repeats"] == 2
    finally:
        for s in stalled:
            s.close()
        server.shutdown()
        server.server_close()


def test_input_sizes_are_bounded_as_a_product(agent, onnx_model):
    status, body = _post(agent.url, onnx_model.read_bytes(), query="input_shape=64x3x4096x4096")
    assert status == 400 and "elements" in body["error"]


def test_agent_start_problems_are_one_line(tmp_path):
    import socket
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    env = dict(os.environ, **{TOKEN_ENV: TOKEN})
    for args, message in ([["--port", str(port)], "cannot listen on 127.0.0.1"],
                          [["--port", "70000"], "out of range"], [["--repeats", "0"], "unrecognized"]):
        done = subprocess.run([sys.executable, "-m", "edgeprune.agent", *args], capture_output=True, text=True,
                              env=env, timeout=60)
        assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr, done.stderr
    busy.close()


def test_latency_on_a_device_repeats_until_the_ci_as_here(onnx_model, agent, monkeypatch, capsys):
    """`latency --device` takes --ci and --max-repeats like a local timing (they were dropped)."""
    from edgeprune.cli import main
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert main(["latency", str(onnx_model), "--repeats", "3", "--ci", "0.0001", "--max-repeats", "9",
                 "--device", agent.url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["repeats"] == 9


def test_an_agent_start_removes_the_uploads_of_agents_killed_mid_request(tmp_path):
    import subprocess
    import sys
    from edgeprune.agent.handler import UPLOAD_PREFIX, remove_stale_uploads
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"{UPLOAD_PREFIX}{gone.pid}-abc"
    live = tmp_path / f"{UPLOAD_PREFIX}{os.getpid()}-def"
    other = tmp_path / "edgeprune-agent-deadlines"          # not an upload folder
    for d in (dead, live, other):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"x")
    assert remove_stale_uploads(str(tmp_path)) == [dead.name]
    assert not dead.exists() and live.exists() and other.exists()
