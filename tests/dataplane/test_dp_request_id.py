"""Request ids on the real nginx: a client's X-Request-Id is kept, a request without one gets a fresh id, and
the access log line carries the same id the backend received."""
from __future__ import annotations

import pytest

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
