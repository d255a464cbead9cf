"""Loopback test bed for netopt's data plane.

* :mod:`testbed.backend`        -- tiny, fast, stdlib-only HTTP/1.1 backend ("replicas").
* :mod:`testbed.nginx_runner`   -- run Debian's nginx on a config text in a temp prefix.
* :mod:`testbed.haproxy_runner` -- the same for HAProxy.
* :mod:`testbed.client`         -- small asyncio HTTP client (fixed-rate load, source binding).
* :mod:`testbed.grpc_backend`   -- gRPC replicas (grpcio asyncio, generic handlers: no .proto).
* :mod:`testbed.grpc_client`    -- gRPC calls, one at a time or open-loop on one HTTP/2 connection.
* :mod:`testbed.service_proxy`  -- a plan's service proxy (rendered, unedited) on nginx, a loopback address per caller.

Everything here talks to 127.0.0.0/8 only.
"""
