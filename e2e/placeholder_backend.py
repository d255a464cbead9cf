#!/usr/bin/env python3
"""Placeholder HTTP backend (stdlib only), used by the e2e images only when
``testbed/backend.py`` is missing.

It accepts the same core CLI as ``testbed/backend.py``
(``--listen HOST:PORT [--name NAME]``, repeatable) and answers every path
with 200, a header ``X-Replica: <name>`` and the body ``<name>\\n``. Without
``--name`` the name comes from ``$NETOPT_REPLICA`` or the hostname.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _handler(name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self, with_body: bool) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = f"{name}\n".encode()
            self.send_response(200)
            self.send_header("X-Replica", name)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(True)

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET  # noqa: N815

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", action="append", default=[], metavar="HOST:PORT")
    p.add_argument("--name", action="append", default=[])
    ns = p.parse_args(argv)
    listens = ns.listen or ["0.0.0.0:8080"]
    default = os.environ.get("NETOPT_REPLICA") or socket.gethostname()
    servers = []
    for i, addr in enumerate(listens):
        host, _, port = addr.rpartition(":")
        name = ns.name[i] if i < len(ns.name) else default
        srv = ThreadingHTTPServer((host or "0.0.0.0", int(port)), _handler(name))
        srv.daemon_threads = True
        servers.append(srv)
        print(f"listening {host}:{srv.server_address[1]} as {name}", flush=True)
    def stop(*_: object) -> None:  # PID 1 in a container ignores SIGTERM without a handler
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        servers[0].serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
