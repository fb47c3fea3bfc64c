"""The device agent under drip-feeding clients: does a token holder still get answers?

    python bench/agent_drip.py [--drips 20] [--valid 5] [--seconds 12] [--label after]

Starts `edgeprune agent` in this process on loopback (its default limits, except as
given), then `--drips` connections that send request headers one byte every 0.1 s
with no token, each reconnecting 0.2 s after it is cut off (a persistent attacker).
One second in, `--valid` token holders POST a tiny ONNX model to /benchmark at once,
with plain http.client (no retry), and a `/health` probe runs too. Records, for each
valid request, its status (or "no answer"), Retry-After, and its time; for the drips,
how long each connection lived and whether any got an answer. Scenarios: 5 and 20
token holders, and (where the agent has the setting) 5 with the cap on connections
without the token (16) under the 20 drips; `--rounds` times each, a fresh agent each.
Writes bench/results/agent_drip_<label>.json. Run against an older checkout with
PYTHONPATH=/path/to/old to measure the "before".
"""
from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import inspect
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
RESULTS = _ROOT / "bench" / "results"
TOKEN = "bench-token-0123456789abcdef"


def tiny_onnx() -> bytes:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype("float32"), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 32, 32])], [w])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def drip(port: int, stop: float, log: list, lock: threading.Lock) -> None:
    head = b"GET /info HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
    while time.monotonic() < stop:
        t0 = time.monotonic()
        answer, how = b"", "still open at the end"
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError as e:
            with lock:
                log.append({"lived_s": 0.0, "answer": "", "how": f"connect failed: {e}"})
            time.sleep(0.1)
            continue
        s.settimeout(0.01)
        try:
            for b in head:
                if time.monotonic() > stop:
                    break
                s.sendall(bytes([b]))
                try:
                    got = s.recv(4096)
                    if not got:
                        how = "closed by the agent"
                        break
                    answer += got
                    how = "answered"
                    break
                except (socket.timeout, BlockingIOError):
                    pass
                time.sleep(0.1)
        except OSError as e:
            how = f"cut off ({type(e).__name__})"
        finally:
            s.close()
        with lock:
            log.append({"lived_s": round(time.monotonic() - t0, 2), "how": how,
                        "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace")})
        time.sleep(0.2)       # then straight back


def valid(port: int, body: bytes, out: list, i: int, timeout: float) -> None:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/benchmark?repeats=20&warmup=2", body=body,
                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        resp.read()
        out[i] = {"status": resp.status, "retry_after": resp.getheader("Retry-After"),
                  "seconds": round(time.monotonic() - t0, 2)}
    except Exception as e:  # noqa: BLE001 - what the client saw is the measurement
        out[i] = {"status": "no answer", "error": f"{type(e).__name__}: {e}", "seconds": round(time.monotonic() - t0, 2)}
    finally:
        conn.close()


def health(port: int, timeout: float) -> dict:
    t0 = time.monotonic()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        return {"status": status, "seconds": round(time.monotonic() - t0, 2)}
    except Exception as e:  # noqa: BLE001
        return {"status": "no answer", "error": f"{type(e).__name__}: {e}", "seconds": round(time.monotonic() - t0, 2)}


def one_round(make_server, body: bytes, drips_n: int, valid_n: int, seconds: float, client_timeout: float,
              max_unauthenticated=None) -> dict:
    accepted = inspect.signature(make_server).parameters
    kw = {k: v for k, v in {"quiet": True, "bench_timeout": 60, "max_unauthenticated": max_unauthenticated}.items()
          if k in accepted and v}
    server = make_server("127.0.0.1", 0, TOKEN, **kw)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    stop = time.monotonic() + seconds
    drips, lock = [], threading.Lock()
    threads = [threading.Thread(target=drip, args=(port, stop, drips, lock), daemon=True) for _ in range(drips_n)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    answers: list = [None] * valid_n
    workers = [threading.Thread(target=valid, args=(port, body, answers, i, client_timeout)) for i in range(valid_n)]
    for t in workers:
        t.start()
    probe = health(port, client_timeout)
    for t in workers:
        t.join()
    for t in threads:
        t.join(timeout=seconds + 10)
    server.shutdown()
    server.server_close()
    statuses = [a["status"] for a in answers]
    cut = [d["lived_s"] for d in drips if d["how"] != "still open at the end"]
    gate = getattr(server, "gate", None)
    return {"valid_200": statuses.count(200), "valid_503": statuses.count(503),
            "valid_503_with_retry_after": sum(1 for a in answers if a["status"] == 503 and a.get("retry_after")),
            "valid_no_answer": statuses.count("no answer"),
            "valid_other": len(statuses) - statuses.count(200) - statuses.count(503) - statuses.count("no answer"),
            "valid_slowest_s": max(a["seconds"] for a in answers),
            "no_answer_errors": sorted({a["error"] for a in answers if a["status"] == "no answer"}),
            "health": probe["status"],
            "drip_connections": len(drips), "drips_answered": sum(1 for d in drips if d["answer"]),
            "drips_answered_200": sum(1 for d in drips if d["answer"].split()[1:2] == ["200"]),
            "drips_ended_by_the_agent": len(cut),
            "drip_ended_after_s_median": round(statistics.median(cut), 2) if cut else None,
            "drip_ended_after_s_max": max(cut) if cut else None,
            "drips_still_open_at_the_end": len(drips) - len(cut),
            "drips_evicted": getattr(gate, "evicted", None), "drips_timed_out": getattr(gate, "timed_out", None),
            "agent_limits": {k: getattr(server, k, None) for k in
                             ("max_connections", "request_timeout", "header_timeout", "max_unauthenticated")}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--drips", type=int, default=20)
    p.add_argument("--valid", type=int, nargs="+", default=[5, 20], help="token holders at once, one scenario each")
    p.add_argument("--max-unauthenticated", type=int, nargs="*", default=[16],
                   help="extra scenarios (5 token holders) with this cap on connections without the token, where "
                        "the agent has one")
    p.add_argument("--rounds", type=int, default=3, help="each scenario's repeats, a fresh agent each")
    p.add_argument("--seconds", type=float, default=12.0, help="how long the drips go on")
    p.add_argument("--client-timeout", type=float, default=10.0, help="each valid request's own deadline")
    p.add_argument("--label", default="after")
    args = p.parse_args(argv)
    from edgeprune.agent import make_server
    import edgeprune
    body = tiny_onnx()
    scenarios = [{"valid": n} for n in args.valid]
    if "max_unauthenticated" in inspect.signature(make_server).parameters:
        scenarios += [{"valid": 5, "max_unauthenticated": cap} for cap in args.max_unauthenticated]
    results = []
    for sc in scenarios:
        rounds = [one_round(make_server, body, args.drips, sc["valid"], args.seconds, args.client_timeout,
                            sc.get("max_unauthenticated")) for _ in range(args.rounds)]
        total = {k: sum(r[k] for r in rounds) for k in ("valid_200", "valid_503", "valid_503_with_retry_after",
                                                         "valid_no_answer", "valid_other")}
        total["health_200"] = sum(r["health"] == 200 for r in rounds)
        results.append({"scenario": sc, "total_over_rounds": total, "rounds": rounds})
        print(json.dumps({"scenario": sc, **total}))
    payload = {"label": args.label, "agent_code": str(Path(edgeprune.__file__).parent), "setup": vars(args),
               "scenarios": results,
               "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                           "load_average_at_start": os.getloadavg(),
                           "date": _dt.datetime.now().isoformat(timespec="seconds")}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"agent_drip_{args.label}.json"
    path.write_text(json.dumps(payload, indent=1))
    print(f"-> {path}")
    return 0


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
