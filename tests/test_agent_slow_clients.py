"""The device agent under slow and hostile clients (issue 21, item 2): drip-fed headers
have a short deadline of their own; connections without the token cannot take a token
holder's place; every valid request gets an answer."""
import http.client
import json
import socket
import threading
import time

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeprune.agent import make_server

TOKEN = "slow-client-token-0123456789"


@pytest.fixture(scope="module")
def model() -> bytes:
    """A one-convolution ONNX model, made here."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype("float32"), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16, 16])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.fixture
def serve():
    servers = []

    def start(**kw):
        server = make_server("127.0.0.1", 0, TOKEN, quiet=True, bench_timeout=60, **kw)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _post(port: int, body: bytes, timeout: float, query: str = "repeats=5&warmup=1") -> dict:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", f"/benchmark?{query}", body=body, headers={"Authorization": f"Bearer {TOKEN}"})
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"{}")
        return {"status": resp.status, "retry_after": resp.getheader("Retry-After"), "body": payload,
                "seconds": time.monotonic() - t0}
    except Exception as e:  # noqa: BLE001 - no answer is what the test looks for
        return {"status": None, "error": repr(e), "seconds": time.monotonic() - t0}
    finally:
        conn.close()


def _drip(port: int, stop: float, log: list, lock) -> None:
    """Headers one byte every 0.1 s, no token; reconnect 0.1 s after being cut off, until `stop`."""
    head = b"GET /info HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 2000 + b"\r\n\r\n"
    while time.monotonic() < stop:
        t0, answer, ended = time.monotonic(), b"", False
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.settimeout(0.01)
        try:
            for b in head:
                if time.monotonic() > stop:
                    break
                s.sendall(bytes([b]))
                try:
                    answer = s.recv(4096)
                    ended = True            # b"": the agent hung up; bytes: it answered
                    break
                except (socket.timeout, BlockingIOError):
                    pass
                time.sleep(0.1)
        except OSError:
            ended = True
        finally:
            s.close()
        with lock:
            log.append({"ended_by_agent": ended, "lived": time.monotonic() - t0, "answer": answer})
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.parametrize("cap", [32, 16], ids=["cut-at-the-header-deadline", "over-the-cap-oldest-evicted"])
def test_twenty_drip_feeders_do_not_silence_five_token_holders(serve, model, cap):
    """20 connections drip their headers without a token (reconnecting whenever cut off), under (32) or over (16)
    the cap on such connections; meanwhile 5 token holders POST a benchmark at once, and /health and /info are
    asked. Every valid request is answered 200 within its deadline; every drip is cut off, none is answered."""
    header_timeout, client_deadline = 1.5, 15.0
    server, port = serve(header_timeout=header_timeout, max_unauthenticated=cap, max_connections=8, max_queue=4)
    stop = time.monotonic() + 4.5
    drips, lock = [], threading.Lock()
    threads = [threading.Thread(target=_drip, args=(port, stop, drips, lock), daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    time.sleep(0.5)                                      # the drips are in
    valid = [None] * 5

    def bench(i):
        valid[i] = _post(port, model, client_deadline)

    workers = [threading.Thread(target=bench, args=(i,)) for i in range(5)]
    for t in workers:
        t.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=client_deadline)
    conn.request("GET", "/health")
    health = conn.getresponse().status
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=client_deadline)
    conn.request("GET", "/info", headers={"Authorization": f"Bearer {TOKEN}"})
    info = conn.getresponse()
    limits = json.loads(info.read())
    conn.close()
    for t in workers:
        t.join(timeout=client_deadline + 5)
    for t in threads:
        t.join(timeout=10)
    counts = server.gate.counts()
    print(f"valid: {[(v['status'], round(v['seconds'], 2)) for v in valid]}; drip connections: {len(drips)}, "
          f"gate: {counts}")
    assert health == 200 and info.status == 200 and limits["header_timeout_s"] == header_timeout
    assert [v["status"] for v in valid] == [200] * 5, valid
    assert all(v["seconds"] < client_deadline and v["body"]["repeats"] == 5 for v in valid)
    ended = [d for d in drips if d["ended_by_agent"]]
    assert len(ended) >= 20 and not any(d["answer"] for d in drips)         # cut off, never answered
    assert max(d["lived"] for d in ended) < header_timeout + 1.0            # by the header deadline at the latest
    assert counts["evicted" if cap < 20 else "timed_out"] >= 20


@pytest.mark.slow
def test_headers_have_their_own_short_deadline_and_uploads_a_longer_one(serve, model):
    """A token holder whose headers come at once may upload slowly, past the header deadline (within the upload
    deadline); a connection whose headers are not complete by then is cut off, token or not."""
    server, port = serve(header_timeout=1.0, request_timeout=30)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"POST /benchmark?repeats=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
              f"Content-Length: {len(model)}\r\n\r\n".encode())
    quarter = len(model) // 4 + 1
    for i in range(4):                                   # the body over ~2 s: twice the header deadline
        time.sleep(0.5)
        s.sendall(model[i * quarter:(i + 1) * quarter])
    answer = s.recv(65536)
    s.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /info HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n".encode())   # never ends its headers
    assert s.recv(4096) == b"" and time.monotonic() - t0 < 2.5
    s.close()


def test_a_kept_alive_connection_gets_the_short_deadline_again(serve):
    server, port = serve(header_timeout=1.0)
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    resp = http.client.HTTPResponse(s)
    resp.begin()
    assert resp.status == 200 and json.loads(resp.read())["ok"] and not resp.will_close
    t0 = time.monotonic()
    assert s.recv(4096) == b"" and 0.5 < time.monotonic() - t0 < 2.5       # idle: closed at the deadline
    s.close()


@pytest.mark.slow
def test_a_queued_benchmark_is_answered_after_the_upload_deadline(serve, model):
    """The upload deadline covers the upload, not the wait for the benchmark slot nor the run."""
    server, port = serve(request_timeout=1.0, queue_timeout=30)
    server.bench_lock.acquire()                          # as if a long benchmark were running
    threading.Timer(2.0, server.bench_lock.release).start()
    r = _post(port, model, timeout=20)
    assert r["status"] == 200 and r["seconds"] > 1.5, r


def test_every_valid_request_is_answered_when_the_queue_overflows(serve, model):
    """More token holders than the queue holds: each gets 200 or 503 with Retry-After, none goes unanswered."""
    server, port = serve(max_queue=1, max_connections=4, queue_timeout=30)
    results = [None] * 8
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, _post(port, model, 30))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    statuses = sorted(r["status"] for r in results)
    assert None not in statuses and set(statuses) <= {200, 503} and 200 in statuses, results
    assert all(r["retry_after"] for r in results if r["status"] == 503)


def test_an_oversized_request_head_is_refused(serve):
    server, port = serve()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /health HTTP/1.1\r\n" + b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 1000) for i in range(80)) + b"\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 431")
    s.close()


def test_eviction_takes_the_oldest_waiting_connection_with_nothing_unread():
    """Over the cap, the oldest waiting connection goes, unless bytes wait unread on it (a client that sent its
    request at once, whose thread has not run yet): then the next oldest."""
    from edgeprune.agent.gate import Gate
    gate = Gate(header_timeout=30, request_timeout=30, max_waiting=2, max_trusted=1)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        first = gate.admit(pairs[0][0])
        pairs[0][1].sendall(b"GET /health HTTP/1.1\r\n\r\n")          # unread on the oldest
        second = gate.admit(pairs[1][0])
        third = gate.admit(pairs[2][0])                                # over the cap of 2
        assert second.expired and not first.expired and not third.expired
        assert pairs[1][1].recv(1) == b""                              # cut off: its peer sees the end
        assert gate.counts()["evicted"] == 1
    finally:
        gate.close()
        for a, b in pairs:
            a.close()
            b.close()
