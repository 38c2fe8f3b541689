#!/usr/bin/env python3
"""Admin API write visibility and start-up time with a big store.

1. Starts `gateway serve` on an empty data directory and loads, with one
   `POST /config`, a service with a key-auth route (`/key`) and N consumers,
   each with a key-auth credential (2N + 3 entities).
2. Write visibility, R times: `POST /consumers` then
   `POST /consumers/{id}/key-auth`, then proxies `GET /key` with the new key
   until it is accepted. Prints the time of each Admin API call, how many of
   the first proxied requests sent after the credential's 201 were accepted
   (all of them means the change was visible by the time the Admin API
   answered), the time from sending the credential's POST to the first
   proxied 200, and the time the gateway took to apply each write to the
   proxy's snapshot (from its debug log).
3. Stops the gateway and starts it again on the same data directory: prints
   the time until the Admin API answers and until the proxy serves a request
   with one of the stored keys.
4. Prints the gateway's peak RSS (VmHWM) of each run.

Only the standard library; the upstream is a tiny HTTP server in this
process. Usage: admin_latency.py --bin target/release/gateway [--consumers N]
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

def free_port():
    """A port nothing listens on now (another benchmark may be running)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


PROXY = ("127.0.0.1", free_port())
ADMIN = ("127.0.0.1", free_port())


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's
    # algorithm and the peer's delayed ACK add 40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def request(addr, method, path, body=None, headers=None):
    """(status, body bytes, seconds) of one request on a fresh connection."""
    connection = http.client.HTTPConnection(*addr, timeout=600)
    payload = None if body is None else json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json"} if payload else {}
    all_headers.update(headers or {})
    started = time.perf_counter()
    connection.request(method, path, body=payload, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    return response.status, data, elapsed


def wait_until(check, timeout=120.0, pause=0.001):
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if check():
                return True
        except OSError:
            pass
        time.sleep(pause)
    return False


def cpu_seconds(pid):
    """User + system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def config(consumers, upstream_port):
    service_id, route_id = str(uuid.uuid4()), str(uuid.uuid4())
    people, keys = [], []
    for index in range(consumers):
        consumer_id = str(uuid.uuid4())
        people.append({"id": consumer_id, "username": f"consumer-{index}"})
        keys.append({"id": str(uuid.uuid4()), "key": f"key-{index:07d}", "consumer": {"id": consumer_id}})
    return {
        "services": [{"id": service_id, "name": "bench", "url": f"http://127.0.0.1:{upstream_port}"}],
        "routes": [{"id": route_id, "name": "key", "paths": ["/key"], "service": {"id": service_id}}],
        "plugins": [{"id": str(uuid.uuid4()), "name": "key-auth", "route": {"id": route_id}}],
        "consumers": people,
        "keyauth_credentials": keys,
    }


def spawn(binary, data_dir, log=subprocess.DEVNULL):
    """Starts `gateway serve`; the snapshot updater's debug lines (the time
    each change took to reach the proxy) go to `log`."""
    environment = dict(os.environ, RUST_LOG="info,gateway::snapshot::updater=debug")
    return subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir,
         "--proxy-listen", "%s:%d" % PROXY, "--admin-listen", "%s:%d" % ADMIN],
        stdout=subprocess.DEVNULL, stderr=log, env=environment)


def snapshot_update_ms(log_path):
    """The `elapsed` of each "configuration change applied" log line, in ms."""
    units = {"s": 1000.0, "ms": 1.0, "µs": 0.001, "ns": 0.000001}
    found = []
    with open(log_path, encoding="utf-8", errors="replace") as log:
        for line in log:
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # colours of older builds
            match = re.search(r"elapsed=([0-9.]+)(ns|µs|ms|s)\b", line)
            if "configuration change applied" in line and match:
                found.append(float(match.group(1)) * units[match.group(2)])
    return found


def start(binary, data_dir):
    """Starts the gateway; returns (process, seconds until the Admin API
    answers, seconds until the proxy answers)."""
    started = time.perf_counter()
    process = spawn(binary, data_dir)
    if not wait_until(lambda: request(ADMIN, "GET", "/status")[0] == 200):
        raise SystemExit("the gateway did not start")
    admin_up = time.perf_counter() - started
    wait_until(lambda: request(PROXY, "GET", "/key", headers={"apikey": "key-0000000"})[0] == 200)
    proxy_up = time.perf_counter() - started
    return process, admin_up, proxy_up


def stop(process):
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/gateway")
    parser.add_argument("--consumers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream_port = server.server_address[1]

    with tempfile.TemporaryDirectory() as work:
        data_dir = os.path.join(work, "data")
        log_path = os.path.join(work, "gateway.log")
        log = open(log_path, "w", encoding="utf-8")
        process = spawn(args.bin, data_dir, log)
        if not wait_until(lambda: request(ADMIN, "GET", "/status")[0] == 200):
            raise SystemExit("the gateway did not start")
        body = config(args.consumers, upstream_port)
        entities = sum(len(value) for value in body.values())
        status, data, seconds = request(ADMIN, "POST", "/config", body)
        if status != 201:
            raise SystemExit(f"POST /config: {status} {data[:300]!r}")
        print(f"POST /config with {entities} entities: {seconds:.2f} s")

        consumer_ms, key_ms, visible_ms = [], [], []
        accepted_at_once = 0
        cpu_before = cpu_seconds(process.pid)
        for index in range(args.rounds):
            status, data, seconds = request(ADMIN, "POST", "/consumers", {"username": f"new-{index}"})
            assert status == 201, (status, data)
            consumer_ms.append(seconds * 1000)
            consumer_id = json.loads(data)["id"]
            key = f"fresh-key-{index}"
            sent = time.perf_counter()
            status, data, seconds = request(ADMIN, "POST", f"/consumers/{consumer_id}/key-auth", {"key": key})
            assert status == 201, (status, data)
            key_ms.append(seconds * 1000)
            first_try = request(PROXY, "GET", "/key", headers={"apikey": key})[0]
            accepted_at_once += first_try == 200
            if first_try != 200:
                wait_until(lambda: request(PROXY, "GET", "/key", headers={"apikey": key})[0] == 200, pause=0)
            visible_ms.append((time.perf_counter() - sent) * 1000)

        cpu_per_write = (cpu_seconds(process.pid) - cpu_before) * 1000 / (2 * args.rounds)

        def summary(values):
            return f"median {statistics.median(values):7.2f} ms, max {max(values):7.2f} ms"

        print(f"POST /consumers ({args.rounds}x):                 {summary(consumer_ms)}")
        print(f"POST /consumers/{{id}}/key-auth ({args.rounds}x):   {summary(key_ms)}")
        print(f"first proxied request after the credential's 201 accepted: {accepted_at_once}/{args.rounds}")
        print(f"credential POST sent -> first proxied 200: {summary(visible_ms)}")
        # The last 2R changes are the single-entity writes (the first is the
        # POST /config).
        updates = snapshot_update_ms(log_path)[-2 * args.rounds:]
        if updates:
            print(f"snapshot update per write (gateway log):   {summary(updates)}")
        print(f"gateway CPU time per write (steadier than wall time on a busy machine): {cpu_per_write:.0f} ms")
        print(f"peak RSS after loading and writes: {peak_rss_mib(process.pid):.0f} MiB")
        stop(process)

        process, admin_up, proxy_up = start(args.bin, data_dir)
        print(f"restart with {entities + 2 * args.rounds} stored entities: "
              f"Admin API up after {admin_up:.2f} s, first proxied 200 after {proxy_up:.2f} s "
              f"(gateway CPU time {cpu_seconds(process.pid):.2f} s)")
        print(f"peak RSS after the restart: {peak_rss_mib(process.pid):.0f} MiB")
        stop(process)
    server.shutdown()


if __name__ == "__main__":
    main()
