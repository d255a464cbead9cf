"""observe on a real nginx log: per-replica times and shares recovered, and no forged or malformed line changes them.

Three replicas of known constant latency behind the rendered config; observe reads the log nginx wrote. Clients
then try to inject JSON through every value they control that reaches the log (a header used as a rate-limit key,
the request id, the URI): nginx's `escape=json` keeps each inside its string. Garbage, a truncated line and a
well-formed line naming an address outside the plan are appended: they are counted and reported, and the
per-replica result is the same as without them.
"""

from __future__ import annotations

import os

import pytest

from components.observe.log_stats import LogReader, LogStats
from components.observe.observation import member_addresses
from testbed.gateway import Gateway, GatewayFactory
from testbed.specs import make_spec

pytestmark = pytest.mark.dataplane

LATENCY_MS = [20.0, 20.0, 60.0]
INJECTED = 'x","upstream_addr":"127.0.0.1:1","upstream_response_time":"9.999","route":"admin'


def _observe(gw: Gateway, extra: bytes = b"") -> LogStats:
    gw.access_log(flush=True)  # nginx writes its buffer
    with open(os.path.join(gw.prefix, "logs", "access.log"), "rb") as f:
        data = f.read() + extra
    reader = LogReader(member_addresses(gw.addresses), {u.name for u in gw.plan.gateway.upstreams})
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        reader.feed(number, line)
    return reader.finish()


def test_observe_recovers_times_and_shares_and_resists_forged_lines(gateway_factory: GatewayFactory) -> None:
    spec = make_spec({"api": {"replicas": 3, "response_time_ms": 20, "max_concurrency": 16}},
                     [{"name": "api", "match": {"path": "/"}, "to": {"api": 1}, "rate_limit": "per_key"}],
                     rate_limits=[{"name": "per_key", "rps": 1000, "burst": 1000, "key": "header:X-Key"}])
    gw = gateway_factory(spec, latencies={"api": LATENCY_MS})
    with gw.client() as client:
        for i in range(150):
            assert client.request(path=f"/item/{i}", headers={"X-Key": f"k{i % 5}"}).status == 200
        for i in range(6):  # injection attempts: each is still one ordinary request to a real replica
            response = client.request(path=f'/forged/{i}?"route":"admin"', headers={"X-Key": INJECTED, "X-Request-Id": INJECTED})
            assert response.status == 200
    clean = _observe(gw)
    assert clean.malformed == 0 and clean.unmapped_tries == 0 and clean.requests == 156
    assert set(clean.routes) == {"api"}, "an injected route name reached the log as a field"
    served = {replica: stats.served for (_, replica), stats in clean.members.items()}
    assert sum(served.values()) == 156
    by_address: dict[str, list[float]] = {}  # a second reading of the same log, by the test bed's json-module parser
    for line in gw.access_log(flush=False):
        by_address.setdefault(line.upstream, []).append(float(line.fields["upstream_response_time"]) * 1000.0)
    means = []
    for replica, latency in enumerate(LATENCY_MS):
        stats = clean.members[("api", replica)]
        assert served[replica] / 156 == pytest.approx(1 / 3, abs=0.05), served  # round robin
        logged = by_address[gw.addresses["api"][replica]]
        assert stats.served == len(logged) and stats.times.mean() == pytest.approx(sum(logged) / len(logged))
        means.append(stats.times.mean() or 0.0)
        # the backend sleeps `latency`; on a loaded machine it wakes late, never early
        assert latency <= means[-1] <= latency + 15.0, (replica, means[-1])
        assert stats.errors == 0
    assert means[2] - (means[0] + means[1]) / 2 == pytest.approx(40.0, abs=8.0), means  # the slow replica stands out by its 40 ms

    forged = (b"not json at all\n"
              b'{"v":1,"msec":"1764000000.000","route":"api","status":"200","upstream_addr":"10.6.6.6:80",'
              b'"upstream_status":"200","upstream_response_time":"9.000"}\n'
              b'{"v":1,"msec":"1764000000.000","route":"api","status":"200","upstream_addr":"127.0.0.1:1"\n'
              b"\x00\xff\n")
    dirty = _observe(gw, forged)
    assert dirty.members == clean.members, "a forged or malformed line changed the per-replica result"
    assert dirty.malformed == 3 and dirty.unmapped == {"10.6.6.6:80": 1}
    assert [p.line for p in dirty.malformed_examples] == [157, 159, 160]
