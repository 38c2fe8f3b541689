#!/usr/bin/env python3
"""The Admin API side of bench/cluster.sh: write-to-visible latency between
nodes sharing one PostgreSQL, and admin write throughput.

1. Propagation, ROUNDS times: `POST /services/bench/routes` (path `/pN`) on
   one node, then `GET /pN` through another node's proxy (one kept-alive
   connection, back to back) until it answers 200. Writers and readers
   rotate over the nodes. Prints p50/p99/max of the time from sending the
   write to the first 200 on the other node ("write to visible"), and of
   the part after the writer's 201 ("after the 201").
2. A burst: BURST routes posted back to back on node 1; the time from the
   last 201 until node 2 serves the last route.
3. Admin write throughput for SECONDS each: one client PATCHing a service
   on a PostgreSQL node; the same on the sled node; two clients on two
   PostgreSQL nodes at once, both PATCHing the same service (every write
   conflicts with the other node's: caught up and planned again).

Only the standard library. Usage:
  cluster.py --pg-admin HOST:PORT,... --pg-proxy HOST:PORT,... --sled-admin HOST:PORT
"""

import argparse
import http.client
import json
import statistics
import threading
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def call(address, method, path, body=None, connection=None):
    """(status, body) of one request; a fresh connection unless given."""
    own = connection is None
    if own:
        connection = http.client.HTTPConnection(*address, timeout=30)
    payload = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if payload else {}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    data = response.read()
    if own:
        connection.close()
    return response.status, data


def percentile(values, fraction):
    ordered = sorted(values)
    index = min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))
    return ordered[index]


def ms(seconds):
    return f"{seconds * 1000:.1f} ms"


def wait_visible(proxy, path, limit=10.0):
    """Polls `path` on `proxy` until 200; the time it answered."""
    connection = http.client.HTTPConnection(*proxy, timeout=10)
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        status, _ = call(proxy, "GET", path, connection=connection)
        if status == 200:
            connection.close()
            return time.perf_counter()
    raise SystemExit(f"{path} never became visible on {proxy}")


def propagation(admins, proxies, rounds):
    total, after_ack = [], []
    for n in range(rounds):
        writer = admins[n % len(admins)]
        reader = proxies[(n + 1) % len(proxies)]
        path = f"/p{n}"
        started = time.perf_counter()
        status, body = call(writer, "POST", "/services/bench/routes",
                            {"name": f"p{n}", "paths": [path]})
        acked = time.perf_counter()
        if status != 201:
            raise SystemExit(f"route {n}: {status} {body[:200]!r}")
        visible = wait_visible(reader, path)
        total.append(visible - started)
        after_ack.append(visible - acked)
    for label, values in (("write to visible", total), ("after the 201", after_ack)):
        print(f"  {label:<28} p50 {ms(statistics.median(values)):>9}  "
              f"p99 {ms(percentile(values, 0.99)):>9}  max {ms(max(values)):>9}  ({len(values)} writes)")


def burst(admins, proxies, count):
    writer, reader = admins[0], proxies[1 % len(proxies)]
    connection = http.client.HTTPConnection(*writer, timeout=30)
    started = time.perf_counter()
    for n in range(count):
        status, body = call(writer, "POST", "/services/bench/routes",
                            {"name": f"b{n}", "paths": [f"/b{n}"]}, connection=connection)
        if status != 201:
            raise SystemExit(f"burst route {n}: {status} {body[:200]!r}")
    acked = time.perf_counter()
    visible = wait_visible(reader, f"/b{count - 1}")
    print(f"  burst of {count} writes on node 1: {count / (acked - started):.0f} writes/s, "
          f"last one served by node 2 {ms(visible - acked)} after its 201")


def patch_loop(admin, seconds, results, tag):
    connection = http.client.HTTPConnection(*admin, timeout=30)
    done, failed = 0, 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        status, _ = call(admin, "PATCH", "/services/bench",
                         {"retries": done % 10, "tags": [tag]}, connection=connection)
        if status == 200:
            done += 1
        else:
            failed += 1
    results.append((done, failed))


def throughput(label, admins, seconds):
    results = []
    threads = [threading.Thread(target=patch_loop, args=(admin, seconds, results, f"w{i}"))
               for i, admin in enumerate(admins)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    print(f"  {label:<44} {done / seconds:7.0f} writes/s  ({failed} failed)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg-admin", required=True)
    parser.add_argument("--pg-proxy", required=True)
    parser.add_argument("--sled-admin", required=True)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--burst", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    admins = [addr(a) for a in args.pg_admin.split(",")]
    proxies = [addr(p) for p in args.pg_proxy.split(",")]
    sled = addr(args.sled_admin)
    for admin in admins[:1] + [sled]:
        status, body = call(admin, "POST", "/services", {"name": "bench", "url": args.upstream})
        if status != 201:
            raise SystemExit(f"creating the bench service: {status} {body[:200]!r}")
    print(f"== write-to-visible latency across {len(admins)} nodes")
    propagation(admins, proxies, args.rounds)
    burst(admins, proxies, args.burst)
    print(f"== admin write throughput ({args.seconds:.0f} s each, PATCH /services/bench)")
    throughput("PostgreSQL, 1 client on node 1", admins[:1], args.seconds)
    throughput("sled, 1 client", [sled], args.seconds)
    throughput("PostgreSQL, 2 clients on nodes 1 and 2 (same row)", admins[:2], args.seconds)


if __name__ == "__main__":
    main()
