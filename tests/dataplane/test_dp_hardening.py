"""The hardened gateway on real nginx: names that cannot merge, dispatch fields that cannot be forged, access
control before any limit, and client timeouts that close slow clients."""
from __future__ import annotations

import socket
import time

import pytest

from testbed.client import Client, RequestSpec, fixed_rate, run
from testbed.gateway import GatewayFactory
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def test_hosts_differing_only_in_punctuation_keep_their_own_routes(gateway_factory: GatewayFactory) -> None:
    """`a-b.com`, `a.b.com` and a host named `default` each dispatch by method in their own map (issue 11 item 1)."""
    hosts = {"a-b.com": "dash", "a.b.com": "dot", "default": "named_default"}
    routes = []
    for host, name in hosts.items():
        routes.append({"name": f"{name}_post", "match": {"host": host, "path": "/x/", "methods": ["POST"]}, "to": {"post": 1}})
        routes.append({"name": name, "match": {"host": host, "path": "/x/"}, "to": {name.replace("_", "-"): 1}})
    routes.append({"name": "other_post", "match": {"path": "/x/", "methods": ["POST"]}, "to": {"post": 1}})
    routes.append({"name": "other", "match": {"path": "/x/"}, "to": {"other": 1}})
    spec = make_spec({"post": 1, "dash": 1, "dot": 1, "named-default": 1, "other": 1}, routes)
    gw = gateway_factory(spec)
    with gw.client() as client:
        for host, name in {**hosts, "unknown.test": "other"}.items():
            got = client.request("GET", "/x/1", host_header=host)
            assert (got.status, got.replica) == (200, f"{name.replace('_', '-')}-0"), host
            posted = client.request("POST", "/x/1", body=b"x", host_header=host)
            assert (posted.status, posted.replica) == (200, "post-0"), host
    routed = {(line.method, line.fields["host"]): line.route for line in gw.access_log()}
    assert routed[("GET", "a-b.com")] == "dash" and routed[("GET", "a.b.com")] == "dot"
    assert routed[("GET", "default")] == "named_default" and routed[("POST", "default")] == "named_default_post"


def test_a_crafted_header_value_cannot_select_another_route(gateway_factory: GatewayFactory) -> None:
    """Field boundaries of the dispatch map are unforgeable: `|`, `:` and the other route's values in a header
    reach only the route whose conditions the request really meets (issue 11 item 4)."""
    routes = [
        {"name": "both", "match": {"path": "/d/", "headers": {"X-A": "1", "X-B": "2"}}, "to": {"both": 1}},
        {"name": "only_b", "match": {"path": "/d/", "headers": {"X-B": "x|2"}}, "to": {"only-b": 1}},
        {"name": "plain", "match": {"path": "/d/"}, "to": {"plain": 1}},
    ]
    gw = gateway_factory(make_spec({"both": 1, "only-b": 1, "plain": 1}, routes))
    crafted = [
        ({"X-A": "a|x", "X-B": "2"}, "plain"),  # the old map source "GET|a|x|2" matched only_b's "[^|]*[|]x\\|2$"
        ({"X-A": "1|2", "X-B": "x"}, "plain"),
        ({"X-A": "1", "X-B": "2|x"}, "plain"),
        ({"X-A": "1:1", "X-B": "2"}, "plain"),
        ({"X-A": "x", "X-B": "x|2"}, "only-b"),
        ({"X-B": "x|2"}, "only-b"),
        ({"X-A": "1", "X-B": "x|2"}, "only-b"),
        ({"X-A": "1", "X-B": "2"}, "both"),
        ({"X-A": "", "X-B": "2"}, "plain"),
    ]
    with gw.client() as client:
        for headers, expected in crafted:
            got = client.request("GET", "/d/1", headers=headers)
            assert (got.status, got.replica) == (200, f"{expected}-0"), headers


def _limited_allow_list_spec() -> object:
    return make_spec(
        {"svc": 1},
        [{"name": "limited", "match": {"path": "/"}, "to": {"svc": 1}, "rate_limit": "shared"}],
        rate_limits=[{"name": "shared", "rps": 10, "burst": 5, "key": "global"}],
        gateway={"allowed_sources": ["127.0.0.2/32"]},
    )


def test_a_denied_client_gets_only_403_and_uses_no_limit_budget(gateway_factory: GatewayFactory) -> None:
    """A client outside allowed_sources is refused before limit_req counts it (issue 11 item 5): it sees 403s only,
    never 429, and afterwards the allowed client still has the global limit's whole burst."""
    gw = gateway_factory(_limited_allow_list_spec())
    denied = run(fixed_rate("127.0.0.1", gw.port, 40, 1.5, RequestSpec(path="/denied"), source="127.0.0.3"))
    assert len(denied) >= 50 and {s.status for s in denied} == {403}, sorted({s.status for s in denied})
    allowed = run(fixed_rate("127.0.0.1", gw.port, 200, 0.05, RequestSpec(path="/allowed"), source="127.0.0.2"))
    statuses = [s.status for s in allowed]
    # Burst 5 + the bucket's first token, sent within 50 ms: the whole budget, untouched by the 60 denied requests.
    assert statuses.count(200) >= 6 and set(statuses) <= {200, 429}, statuses
    log = gw.access_log()
    assert {line.status for line in log if line.remote_addr == "127.0.0.3"} == {403}
    assert all(line.fields["rate_limit"] == "" for line in log if line.remote_addr == "127.0.0.3")


def test_a_client_that_stalls_its_header_is_closed_after_client_timeouts_header_s(gateway_factory: GatewayFactory) -> None:
    """gateway.client_timeouts.header_s bounds a slowloris-style client (nginx's default would wait 60 s)."""
    spec = make_spec({"svc": 1}, [{"name": "r", "match": {"path": "/"}, "to": {"svc": 1}}],
                     gateway={"client_timeouts": {"header_s": 1}})
    gw = gateway_factory(spec)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finishes the header
        started = time.monotonic()
        data = sock.recv(4096)  # nginx closes (408 is not sent for a header timeout: just the close)
        waited = time.monotonic() - started
    assert data in (b"",) or data.startswith(b"HTTP/1.1 408"), data[:80]
    assert 0.5 <= waited < 5, waited


def test_stub_status_answers_the_gateway_host_only(gateway_factory: GatewayFactory) -> None:
    """127.0.0.1 (the container's own health check) may read stub_status; any other address, even 127.0.0.2, not."""
    gw = gateway_factory(make_spec({"svc": 1}, [{"name": "r", "match": {"path": "/"}, "to": {"svc": 1}}]))
    with Client("127.0.0.1", gw.status_port) as local, Client("127.0.0.1", gw.status_port, source="127.0.0.2") as other:
        assert local.request("GET", "/stub_status").body.startswith(b"Active connections:")
        assert other.request("GET", "/stub_status").status == 403
        assert other.request("GET", "/healthz").status == 200
