"""A real WebSocket client for tests/tests/suite/websocket.rs (Python's
`websockets`, sync API): one scenario per run, one JSON line on stdout.

    python3 websocket_client.py SCENARIO URL [CA_FILE|-] [APIKEY|-] [SECONDS]

- echo: a text message, a ping and a binary message, each answered; then
  a clean close.
- refused: the handshake must be refused; prints its status and body.
- idle: opens, sends nothing, and waits up to SECONDS for the server to
  close; prints how long that took.
- busy: sends a message every 0.3 s for SECONDS and reads its echo; prints
  how many came back (the socket must stay open).
"""

import json
import ssl
import sys
import time

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def open_socket(url, ca_file, apikey):
    options = {"ping_interval": None, "open_timeout": 10, "close_timeout": 2}
    if apikey != "-":
        options["additional_headers"] = {"apikey": apikey}
    if url.startswith("wss:"):
        options["ssl"] = ssl.create_default_context(cafile=ca_file)
    return connect(url, **options)


def echo(ws):
    message = json.dumps({"message": "hello websocket"})
    ws.send(message)
    text = ws.recv(timeout=5)
    pong = ws.ping(b"give me a pong").wait(5)
    ws.send(bytes(range(256)) * 300)
    binary = ws.recv(timeout=5)
    subprotocol = ws.subprotocol
    ws.close()
    return {
        "text": text,
        "pong": pong,
        "binary_length": len(binary),
        "binary_ok": binary == bytes(range(256)) * 300,
        "subprotocol": subprotocol,
        "close_code": ws.close_code,
    }


def idle(ws, seconds):
    started = time.monotonic()
    try:
        ws.recv(timeout=seconds)
        return {"closed": False, "message": True}
    except TimeoutError:
        return {"closed": False}
    except ConnectionClosed as closed:
        return {
            "closed": True,
            "after": round(time.monotonic() - started, 3),
            "code": closed.rcvd.code if closed.rcvd else None,
        }


def busy(ws, seconds):
    started = time.monotonic()
    echoed = 0
    while time.monotonic() - started < seconds:
        ws.send("tick")
        if ws.recv(timeout=5) == "tick":
            echoed += 1
        time.sleep(0.3)
    ws.close()
    return {"echoed": echoed, "open_for": round(time.monotonic() - started, 3)}


def main():
    scenario, url = sys.argv[1], sys.argv[2]
    ca_file = sys.argv[3] if len(sys.argv) > 3 else "-"
    apikey = sys.argv[4] if len(sys.argv) > 4 else "-"
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0
    try:
        ws = open_socket(url, ca_file, apikey)
    except InvalidStatus as refused:
        response = refused.response
        print(json.dumps({
            "refused": response.status_code,
            "body": response.body.decode("utf-8", "replace"),
            "content_type": response.headers.get("content-type"),
        }))
        return
    with ws:
        handshake = dict(ws.response.headers.raw_items())
        if scenario == "echo":
            result = echo(ws)
        elif scenario == "idle":
            result = idle(ws, seconds)
        elif scenario == "busy":
            result = busy(ws, seconds)
        else:
            result = {"opened": True}
    result["handshake"] = {name.lower(): value for name, value in handshake.items()}
    print(json.dumps(result))


main()
