#!/usr/bin/env python3
"""One call as the application makes it, run inside a caller's container: dial `<callee>:<port>` by name.

Stdlib only (the e2e backend image has python3 and nothing else); `e2e.reachability` passes this file's source to
`python3 -c`. For each `protocol:name:port` argument it resolves the name with the container's resolver (Docker's
embedded DNS: the name answers on the caller's own call link) and makes one call, printing one JSON line:
`{"target", "resolved": [addresses], "ok", "status", "replica", "error"}`.

- http, tcp: `GET /` with `Connection: close` (a tcp proxy passes the bytes through; the e2e backend speaks HTTP):
  `status` and the `X-Replica` of the replica that answered;
- grpc: a gRPC call over HTTP/2 cleartext with prior knowledge (connection preface, SETTINGS, one HEADERS frame
  with HPACK literals, an empty gRPC message with END_STREAM); `ok` when the proxy answers the stream with a
  HEADERS frame. The e2e backend speaks HTTP/1.1 only, so the proxy's answer is its own gRPC status (UNAVAILABLE);
  its access log shows the caller and the replica it tried, which is what the e2e checks.
"""
from __future__ import annotations

import http.client
import json
import socket
import struct
import sys

TIMEOUT_S = 5.0
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, SETTINGS, DATA, RST_STREAM, GOAWAY = 1, 4, 0, 3, 7
END_STREAM, END_HEADERS = 0x1, 0x4


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: str, value: str) -> bytes:
    """HPACK "literal header field without indexing, new name", no Huffman (RFC 7541 6.2.2); short strings only."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data


def grpc_call(host: str, port: int) -> dict[str, object]:
    headers = b"".join(_literal(k, v) for k, v in ((":method", "POST"), (":scheme", "http"), (":path", "/netopt.e2e.Probe/Call"),
                                                   (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
                                                   ("te", "trailers")))
    with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
        sock.sendall(PREFACE + _frame(SETTINGS, 0, 0, b"") + _frame(HEADERS, END_HEADERS, 1, headers)
                     + _frame(DATA, END_STREAM, 1, b"\x00\x00\x00\x00\x00"))
        while True:
            head = _read_exact(sock, 9)
            length, kind, flags, stream = int.from_bytes(head[:3], "big"), head[3], head[4], int.from_bytes(head[5:], "big") & 0x7FFFFFFF
            _read_exact(sock, length)
            if kind == SETTINGS and not flags & 0x1:
                sock.sendall(_frame(SETTINGS, 0x1, 0, b""))  # ACK the server's settings
            if stream == 1 and kind == HEADERS:
                return {"ok": True, "status": "headers"}
            if (stream == 1 and kind == RST_STREAM) or kind == GOAWAY:
                return {"ok": False, "status": "reset" if kind == RST_STREAM else "goaway"}


def http_call(host: str, port: int) -> dict[str, object]:
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return {"ok": resp.status == 200, "status": resp.status, "replica": resp.getheader("X-Replica")}
    finally:
        conn.close()


def call(target: str) -> dict[str, object]:
    protocol, host, port = target.split(":")
    result: dict[str, object] = {"target": target, "resolved": [], "ok": False, "status": None, "replica": None, "error": None}
    try:
        result["resolved"] = sorted({str(info[4][0]) for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)})
        result.update(grpc_call(host, int(port)) if protocol == "grpc" else http_call(host, int(port)))
    except (OSError, http.client.HTTPException) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    return result


def main(argv: list[str]) -> int:
    for target in argv:
        print(json.dumps(call(target)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
