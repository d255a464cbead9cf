"""Loopback test bed for netopt's data plane.

* :mod:`testbed.backend`        -- tiny, fast, stdlib-only HTTP/1.1 backend ("replicas").
* :mod:`testbed.nginx_runner`   -- run Debian's nginx on a config text in a temp prefix.
* :mod:`testbed.haproxy_runner` -- the same for HAProxy.
* :mod:`testbed.client`         -- small asyncio HTTP client (fixed-rate load, source binding).

Everything here talks to 127.0.0.0/8 only.
"""
