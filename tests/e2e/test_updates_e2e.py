"""Day two on the Docker target: updates under constant load (~200 req/s from inside the daemon's namespace).

Each stack is applied from its recording, then changed recordings are replayed the way `pulumi up` takes them
(e2e.update: the provider schema decides update in place vs replace, dependencies decide the order):

- dev, then dev with a route added, the canary moved 90/10 -> 50/50 and the api limit tightened: the gateway
  container stays, the config is reloaded in place; 0 failed requests, the new behaviour right after;
- the same change with a config nginx refuses (injected past validation): the update fails with nginx's
  message, the gateway keeps answering with the config it had; 0 failed requests;
- staging with a new web image: its two replicas roll one at a time; 0 failed GETs.

Figures (requests sent / failed per phase) are printed with `-s`.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.apply import CONTAINER, Applied, ApplyError, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.load import ConstantLoad, Target, under_load, workloads
from e2e.stack import alias_images, is_gateway, record_changed_stack, record_stack
from e2e.update import update_docker_resources

pytestmark = pytest.mark.e2e

COMMAND = "command:local:Command"
# ~195 req/s, every route under its per-client limit (all requests come from one address)
LOAD = [Target("web", "/", 80), Target("reports", "/reports/q3", 10), Target("static", "/static/app.css", 45),
        Target("api", "/api/items", 45), Target("auth", "/auth/session", 15)]
SETTLE_S = 0.5  # after the update returns: connections opened before it may still finish on the old workers


def _deploy(d: Dockerd, records: list[Any]) -> Applied:
    alias_images(d.client, records)
    d.remove_all_objects()
    return apply_docker_resources(d.client, records, docker_host=d.base_url)


def _port(records: list[Any]) -> int:
    gateway = next(r for r in records if r.type == CONTAINER and is_gateway(r.inputs))
    return int(gateway.inputs["ports"][0]["external"])


def _report(name: str, load: ConstantLoad, start: float, end: float) -> dict[str, object]:
    summary = ConstantLoad.summary(load.between(start, end))
    print(f"\n[e2e.updates] {name}: {summary}")
    return summary


def _changed_dev(values: dict[str, Any]) -> None:
    values["routes"].insert(0, {"name": "reports", "match": {"path": "/reports/", "path_type": "prefix"},
                                "backends": [{"workload": "static"}], "rate_limit": "web_per_client"})
    values["traffic"]["reports"] = {"peak_rps": 10, "clients": 1}
    api = next(r for r in values["routes"] if r["name"] == "api")
    api["backends"] = [{"workload": "api", "weight": 50}, {"workload": "api-canary", "weight": 50}]
    limit = next(x for x in values["rate_limits"] if x["name"] == "api_per_client")
    limit.update(rps=10, burst=5)


@pytest.fixture(scope="module")
def dev(dockerd: Dockerd, e2e_images: dict[str, str]) -> Iterator[tuple[Dockerd, Applied, list[Any]]]:
    records = record_stack("dev")
    app = _deploy(dockerd, records)
    try:
        yield dockerd, app, records
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def test_config_change_reloads_in_place_under_load(dev: tuple[Dockerd, Applied, list[Any]]) -> None:
    d, app, records = dev
    changed = record_changed_stack("dev", _changed_dev)
    gateway_id = app.container("shop-dev-gateway").id
    load = ConstantLoad(d, _port(records), LOAD)
    run = under_load(load, lambda: update_docker_resources(app, changed), before_s=3, after_s=5)
    # The canary's new weights change api's and api-canary's arrival rates, so their default per-caller limits into
    # auth (their shares of auth's capacity) change too: auth's proxy reloads as well.
    expected = [("shop-dev-auth-proxy-config", "update"), ("shop-dev-gateway-config", "update")]
    assert run.error is None and sorted((s.name, s.action) for s in run.value or []) == expected, run
    assert app.container("shop-dev-gateway").id == gateway_id, "the gateway container was not replaced"
    whole = _report(f"config change (update took {run.finished - run.started:.2f}s)", load, 0.0, run.ended)
    assert whole["failed"] == 0 and float(str(whole["rps"])) >= 150, (whole, ConstantLoad.failed(load.results)[:10])

    t1, t_end = run.finished, run.ended
    before, after = load.between(0, run.started), load.between(t1 + SETTLE_S, t_end)
    assert set(workloads(r for r in before if r.target == "reports")) == {"web"}
    assert set(workloads(r for r in after if r.target == "reports")) == {"static"}, "the added route answers"
    assert not [r for r in before if r.status == 429], "no route was over its limit before"
    api_before = workloads(r for r in before if r.target == "api")
    assert api_before["api-canary"] / sum(api_before.values()) < 0.3, api_before  # 90/10
    api_after = [r for r in after if r.target == "api"]
    served = workloads(api_after)
    assert 0.25 <= served["api-canary"] / sum(served.values()) <= 0.75, served  # 50/50
    window = max(r.t for r in api_after) - min(r.t for r in api_after)
    assert sum(served.values()) <= 10 * window * 1.15 + 5 + 2, (served, window)  # rate x time + burst
    assert sum(1 for r in api_after if r.status == 429) >= 0.5 * len(api_after), "the tightened limit answers 429"


def test_config_nginx_refuses_keeps_the_running_gateway(dev: tuple[Dockerd, Applied, list[Any]]) -> None:
    d, app, records = dev
    bad = record_changed_stack("dev", _changed_dev)
    config = next(r for r in bad if r.type == COMMAND and r.name.endswith("-gateway-config"))
    assert "server_tokens off;" in config.inputs["stdin"]
    config.inputs["stdin"] = config.inputs["stdin"].replace("server_tokens off;", "server_tokens off;\n    netopt_no_such_directive on;", 1)
    config.inputs["stdin"] = config.inputs["stdin"].replace("rate=10r/s", "rate=1r/s")  # would change behaviour
    with ConstantLoad(d, _port(records), LOAD) as load:
        time.sleep(2)
        t0 = time.monotonic()
        with pytest.raises(ApplyError) as failure:
            update_docker_resources(app, bad)
        t1 = time.monotonic()
        time.sleep(3)
    t_end = time.monotonic()
    message = str(failure.value)
    print(f"\n[e2e.updates] refused config: {message}")
    assert 'unknown directive "netopt_no_such_directive"' in message and "keeps serving the previous one" in message
    whole = _report(f"refused config (update took {t1 - t0:.2f}s)", load, 0.0, t_end)
    assert whole["failed"] == 0, ConstantLoad.failed(load.results)[:10]
    after = load.between(t1, t_end)
    assert set(workloads(r for r in after if r.target == "reports")) == {"static"}, "still the config it had"
    served = sum(workloads(r for r in after if r.target == "api").values())
    assert served >= 10 * (t_end - t1) * 0.5, "still 10 r/s on the api route, not the refused 1 r/s"


def test_backend_image_change_rolls_one_replica_at_a_time(dockerd: Dockerd, e2e_images: dict[str, str]) -> None:
    records = record_stack("staging")
    app = _deploy(dockerd, records)
    try:
        def new_web_image(values: dict[str, Any]) -> None:
            next(w for w in values["workloads"] if w["name"] == "web")["image"] = "ghcr.io/acme/shop-web:2.5.0"

        changed = record_changed_stack("staging", new_web_image)
        alias_images(dockerd.client, changed)
        old_ids = {n: app.container(n).id for n in ("shop-staging-web-0", "shop-staging-web-1")}
        with ConstantLoad(dockerd, _port(records), LOAD) as load:
            time.sleep(2)
            t0 = time.monotonic()
            steps = update_docker_resources(app, changed)
            t1 = time.monotonic()
            time.sleep(2)
        t_end = time.monotonic()
        assert [(s.name, s.action) for s in steps] == [
            ("shop-staging-web-0", "replace"), ("shop-staging-web-0-settle", "replace"), ("shop-staging-web-1", "replace")], steps
        whole = _report(f"web image change (update took {t1 - t0:.2f}s)", load, 0.0, t_end)
        assert whole["failed"] == 0, ConstantLoad.failed(load.results)[:10]
        web = [app.container(n).attrs for n in ("shop-staging-web-0", "shop-staging-web-1")]
        assert all(a["Id"] != old_ids[a["Name"].lstrip("/")] and a["Config"]["Image"].endswith(":2.5.0") for a in web)
        # web-1 went only after web-0 was healthy (first probe one 5 s interval after its start) and settled
        started0 = web[0]["State"]["StartedAt"]
        created1 = web[1]["Created"]
        assert _seconds(created1) - _seconds(started0) >= 5 + 5 - 0.5, (started0, created1)
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def _seconds(docker_time: str) -> float:
    """Docker's RFC 3339 nanosecond timestamps, to seconds since the epoch."""
    from datetime import datetime

    head, _, frac = docker_time.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float(f"0.{frac or 0}")
