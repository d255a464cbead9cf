"""East-west on the Docker target: the dev stack's service proxies on the private dockerd, under calls made from
inside the callers' containers.

dev's auth has two callers, api and api-canary, each on a call network of its own into auth-proxy. The load runs
in each caller container's network namespace (`e2e.load.ConstantLoad` with `netns`) and dials the address auth's
name resolves to there (`getent hosts auth` inside the container: Docker's resolver), so the calls arrive where
the application's would; one connection per call (`Connection: close`).

- a config change of a service proxy under ~200 calls/s (api's call into auth limited from its default ~487 r/s
  to 50 r/s, burst 10): one step, the proxy's config Command; the container stays; 0 failed calls; the new limit
  answers right after;
- a config `nginx -t` refuses (the same change with an unknown directive, and a 5 r/s limit it would bring): the
  update fails with nginx's message, the proxy keeps serving the config it had (still ~50 r/s); 0 failed calls;
- a per-caller limit (api's call at 5 r/s, burst 5; api-canary's default ~46 r/s): api calling at 25 r/s gets 429
  beyond its limit while api-canary, calling the same proxy at 5 r/s at the same time, gets none.

Figures (calls sent / failed / statuses per phase) are printed with `-s`.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e.apply import Applied, ApplyError, apply_docker_resources
from e2e.dockerd import Dockerd
from e2e.load import ConstantLoad, Target, under_load
from e2e.stack import alias_images, record_changed_stack, record_stack
from e2e.update import update_docker_resources

pytestmark = pytest.mark.e2e

COMMAND = "command:local:Command"
PROXY = "shop-dev-auth-proxy"
CALLERS = {"api": "shop-dev-api-0", "api-canary": "shop-dev-api-canary-0"}
AUTH_PORT = 9000
SETTLE_S = 0.5  # after the update returns: calls that started before it may still finish on the old workers


@pytest.fixture(scope="module")
def dev(dockerd: Dockerd, e2e_images: dict[str, str]) -> Iterator[tuple[Dockerd, Applied]]:
    records = record_stack("dev")
    alias_images(dockerd.client, records)
    dockerd.remove_all_objects()
    app = apply_docker_resources(dockerd.client, records, docker_host=dockerd.base_url)
    try:
        yield dockerd, app
    finally:
        app.teardown()
        dockerd.remove_all_objects()


def _api_call_limit(rps: float, burst: int) -> Callable[[dict[str, Any]], None]:
    def change(values: dict[str, Any]) -> None:
        api = next(w for w in values["workloads"] if w["name"] == "api")
        api["calls"] = [{**call, "limit_rps": rps, "burst": burst} if call["workload"] == "auth" else call for call in api["calls"]]
    return change


def _calls(d: Dockerd, app: Applied, caller: str, rps: float) -> ConstantLoad:
    """Calls from inside `caller`'s container to auth by the address its name resolves to there, at `rps`."""
    container = app.container(CALLERS[caller])
    resolved = container.exec_run(["getent", "hosts", "auth"]).output.decode().split()
    assert resolved, f"auth does not resolve inside {CALLERS[caller]}"
    netns = f"/proc/{container.attrs['State']['Pid']}/ns/net"
    return ConstantLoad(d, AUTH_PORT, [Target(caller, "/", rps)], host=resolved[0], netns=netns)


def _report(name: str, results: list[Any]) -> dict[str, object]:
    summary = ConstantLoad.summary(results)
    print(f"\n[e2e.east-west] {name}: {summary}")
    return summary


def test_a_service_proxy_config_change_is_reloaded_in_place_under_load(dev: tuple[Dockerd, Applied]) -> None:
    d, app = dev
    changed = record_changed_stack("dev", _api_call_limit(50, 10))
    proxy_id = app.container(PROXY).id
    load = _calls(d, app, "api", 200)
    run = under_load(load, lambda: update_docker_resources(app, changed), before_s=3, after_s=5)
    assert run.error is None and [(s.name, s.action) for s in run.value or []] == [(f"{PROXY}-config", "update")], run
    assert app.container(PROXY).id == proxy_id, "the proxy container was not replaced"
    whole = _report(f"proxy config change (update took {run.finished - run.started:.2f}s)", load.results)
    assert whole["failed"] == 0 and float(str(whole["rps"])) >= 150, (whole, ConstantLoad.failed(load.results)[:10])
    before, after = load.between(0, run.started), load.between(run.finished + SETTLE_S, run.ended)
    assert before and all(r.status == 200 for r in before), Counter(r.status for r in before)
    assert {str(r.replica) for r in before} == {"auth-0"}, "answered by auth's replica, through the proxy"
    window = max(r.t for r in after) - min(r.t for r in after)
    admitted = sum(1 for r in after if r.status == 200)
    assert admitted <= 50 * window * 1.15 + 10 + 2, (admitted, window)  # rate x time + burst
    assert sum(1 for r in after if r.status == 429) >= 0.5 * len(after), "the new 50 r/s limit answers 429"


def test_a_service_proxy_config_nginx_refuses_keeps_the_running_proxy(dev: tuple[Dockerd, Applied]) -> None:
    d, app = dev
    bad = record_changed_stack("dev", _api_call_limit(5, 5))
    config = next(r for r in bad if r.type == COMMAND and r.name == f"{PROXY}-config")
    assert "server_tokens off;" in config.inputs["stdin"]
    config.inputs["stdin"] = config.inputs["stdin"].replace("server_tokens off;", "server_tokens off;\n    netopt_no_such_directive on;", 1)
    load = _calls(d, app, "api", 100)
    run = under_load(load, lambda: update_docker_resources(app, bad), before_s=2, after_s=4)
    message = str(run.error)
    print(f"\n[e2e.east-west] refused proxy config: {message}")
    assert isinstance(run.error, ApplyError), run
    assert 'unknown directive "netopt_no_such_directive"' in message and "keeps serving the previous one" in message
    whole = _report(f"refused proxy config (update took {run.finished - run.started:.2f}s)", load.results)
    assert whole["failed"] == 0, ConstantLoad.failed(load.results)[:10]
    after = load.between(run.finished, run.finished + 4)
    admitted = sum(1 for r in after if r.status == 200)
    assert admitted >= 50 * 4 * 0.6, f"still the 50 r/s it had, not the refused 5 r/s: {admitted} in 4 s"


def test_a_per_caller_limit_answers_429_to_the_noisy_caller_only(dev: tuple[Dockerd, Applied]) -> None:
    d, app = dev
    steps = update_docker_resources(app, record_changed_stack("dev", _api_call_limit(5, 5)))
    assert [(s.name, s.action) for s in steps] == [(f"{PROXY}-config", "update")], steps
    time.sleep(1)  # the limit's bucket starts full; calls before the update do not count
    duration = 5.0
    with _calls(d, app, "api", 25) as noisy, _calls(d, app, "api-canary", 5) as quiet:
        time.sleep(duration)
    loud, calm = _report("noisy caller api (limit 5 r/s, burst 5)", noisy.results), _report("quiet caller api-canary", quiet.results)
    assert loud["failed"] == 0 and calm["failed"] == 0, (ConstantLoad.failed(noisy.results)[:5], ConstantLoad.failed(quiet.results)[:5])
    noisy_ok = sum(1 for r in noisy.results if r.status == 200)
    assert noisy_ok <= 5 * duration * 1.15 + 5 + 2, noisy_ok  # rate x time + burst
    assert sum(1 for r in noisy.results if r.status == 429) >= len(noisy.results) // 2, loud
    assert len(quiet.results) >= 20 and all(r.status == 200 for r in quiet.results), calm
    time.sleep(1.5)  # the proxy's access log flushes every second
    logged = [json.loads(x) for x in app.container(PROXY).logs(stdout=True, stderr=False).decode().splitlines() if x.startswith("{")]
    refused = Counter(x["caller"] for x in logged if x["status"] == "429")
    assert set(refused) == {"api"}, f"only api's calls were refused, by its own limit: {refused}"
