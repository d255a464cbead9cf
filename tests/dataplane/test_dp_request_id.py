"""Request ids on the real nginx: a client's X-Request-Id is kept, a request without one gets a fresh id, and
the access log line carries the same id the backend received."""
from __future__ import annotations

import pytest

from components.render.access_log import FIELDS
from testbed.gateway import GatewayFactory
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane


def test_request_ids_are_kept_or_made_unique_and_logged(gateway_factory: GatewayFactory) -> None:
    gw = gateway_factory(make_spec({"api": 2}, [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}}]))
    made: list[str] = []
    with gw.client() as c:
        kept = c.request(path="/kept", headers={"X-Request-Id": "client-chosen-42"})
        assert kept.status == 200 and kept.headers.get("x-request-id") == "client-chosen-42"
        for i in range(200):
            r = c.request(path=f"/made/{i}")
            assert r.status == 200
            made.append(r.headers["x-request-id"])
    with gw.client() as other:  # a second connection: ids stay distinct across connections
        made.append(other.request(path="/made/other").headers["x-request-id"])
    assert len(set(made)) == len(made), "generated request ids repeat"
    assert all(m and m != "client-chosen-42" for m in made)

    logged = {line.uri: line.request_id for line in gw.access_log()}
    assert logged["/kept"] == "client-chosen-42"
    assert [logged[f"/made/{i}"] for i in range(200)] == made[:200], "log and backend saw different ids"
    assert logged["/made/other"] == made[-1]


def test_unsafe_request_ids_are_replaced_and_no_log_field_can_be_forged(gateway_factory: GatewayFactory) -> None:
    """A client id with spaces, quotes or JSON cannot forge the access log's route/upstream fields (#11 item 6)."""
    gw = gateway_factory(make_spec({"api": 1}, [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}}]))
    forged = ['x route=admin upstream=10.0.0.1:1', 'x","route":"admin","upstream_addr":"10.0.0.1:1', "a" * 129]
    with gw.client() as c:
        for i, value in enumerate(forged):
            r = c.request(path=f"/forged/{i}", headers={"X-Request-Id": value})
            assert r.status == 200
            assert r.headers["x-request-id"] != value, "an unsafe client id reached the backend"
        r = c.request(path='/forged/"quote"?route=admin', headers={"X-Request-Id": "ok.id:1-2_3"})
        assert r.headers["x-request-id"] == "ok.id:1-2_3"
    lines = [ln for ln in gw.access_log() if ln.uri.startswith("/forged/")]
    assert len(lines) == len(forged) + 1
    assert all(set(ln.fields) == {"v", *FIELDS} for ln in lines), "log fields differ from the documented schema"
    for line in lines:
        assert line.route == "api" and line.fields["upstream_addr"] == line.upstream
        assert not line.upstream.startswith("10.0.0.1"), line.raw
    assert {ln.request_id for ln in lines[: len(forged)]}.isdisjoint(forged)
    assert lines[-1].uri == '/forged/"quote"?route=admin' and lines[-1].request_id == "ok.id:1-2_3"


def test_limit_fields_are_logged_per_route_and_unused_limit_maps_are_not_rendered(gateway_factory: GatewayFactory) -> None:
    """A route's rate limit is logged with its key; a kind of limit no route uses has no map at all (the log format
    writes "" for it, so a proxy without limits evaluates no map per line)."""
    spec = make_spec({"api": 1}, [{"name": "limited", "match": {"path": "/limited"}, "to": {"api": 1}, "rate_limit": "rl"},
                                  {"name": "free", "match": {"path": "/"}, "to": {"api": 1}}],
                     rate_limits=[{"name": "rl", "rps": 1000, "burst": 1000, "key": "client_ip"}])
    gw = gateway_factory(spec)
    assert "map $netopt_route $netopt_log_rl " in gw.conf and "$netopt_log_cl" not in gw.conf
    with gw.client() as c:
        assert c.request(path="/limited").status == 200 and c.request(path="/free").status == 200
    fields = {line.uri: line.fields for line in gw.access_log()}
    assert {k: fields["/limited"][k] for k in ("route", "rate_limit", "rate_limit_key", "concurrency_limit", "concurrency_limit_key")} == \
        {"route": "limited", "rate_limit": "rl", "rate_limit_key": "127.0.0.1", "concurrency_limit": "", "concurrency_limit_key": ""}
    assert {k: fields["/free"][k] for k in ("route", "rate_limit", "rate_limit_key")} == {"route": "free", "rate_limit": "", "rate_limit_key": ""}
    assert set(fields["/free"]) == {"v", *FIELDS}, "every field is still logged"
