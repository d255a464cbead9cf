"""Edges of components/spec/: the ReDoS analyzer's plumbing (where recheck is found, how its answers are matched to
questions, PCRE rewrites that come after an earlier construct of the same kind), boundary values of the validators,
and the key paths and fixes of consistency problems that the broader tests do not pin down."""

from __future__ import annotations

import contextlib
import copy
import shutil
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from components.spec import redos, shape_messages
from components.spec.runtime import MAX_ID
from components.spec.validation import SpecError, parse_spec


def _problems(raw: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(raw)
    return {issue.path: issue.message for issue in caught.value.issues}


def _kubernetes(raw: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(raw), "target": "kubernetes", "network": {"name": "t"}}


@contextlib.contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) when the body runs longer than `seconds`: a translation that steps back loops forever."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- PCRE to JavaScript: a construct after an earlier one of its kind ------------------------------------------------

def test_each_quoted_section_ends_at_its_own_backslash_e() -> None:
    """`\\Q…\\E` quotes up to the next `\\E`, not the first one in the pattern (that one closed an earlier section)."""
    with _deadline(2):
        assert redos.javascript_source(r"^/\Qv1.0\E/x/\Q.json\E$") == (r"^/v1\.0/x/\.json$", "", False)
        assert redos.javascript_source(r"^/\Ea\Q.b\E$") == (r"^/a\.b$", "", False)  # a lone \E is nothing in PCRE


def test_a_comment_after_a_group_ends_at_its_own_parenthesis() -> None:
    """`(?#…)` runs to the next `)` after it, not to the `)` that closed an earlier group."""
    with _deadline(2):
        assert redos.javascript_source(r"^/(v[0-9]+)(?#the version)/items$") == (r"^/(v[0-9]+)/items$", "", False)
        assert redos.check.__wrapped__(r"^/(v[0-9]+)(?#the version)/items$").status == "safe"


# -- where recheck is found ---------------------------------------------------------------------------------------

def _tool_dir(tmp_path: Path, native: bool | None, jar: bool) -> Path:
    """A tools/recheck/ with the native build (None: absent; True: executable; False: not executable) and the jar."""
    if native is not None:
        binary = tmp_path / "node_modules" / "recheck-linux-x64" / "recheck"
        binary.parent.mkdir(parents=True)
        binary.write_text("#!/bin/sh\n")
        binary.chmod(stat.S_IRUSR | stat.S_IWUSR | (stat.S_IXUSR if native else 0))
    if jar:
        archive = tmp_path / "node_modules" / "recheck-jar" / "recheck.jar"
        archive.parent.mkdir(parents=True)
        archive.write_bytes(b"PK")
    return tmp_path


def test_netopt_recheck_overrides_the_installed_analyzer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(redos, "TOOL_DIR", _tool_dir(tmp_path, native=True, jar=True))
    monkeypatch.setenv("NETOPT_RECHECK", "/opt/recheck/bin/recheck")
    assert redos.analyzer_command() == ["/opt/recheck/bin/recheck", "agent"]


def test_the_native_build_runs_when_it_is_executable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NETOPT_RECHECK", raising=False)
    monkeypatch.setattr(redos, "TOOL_DIR", _tool_dir(tmp_path, native=True, jar=True))
    native = tmp_path / "node_modules" / "recheck-linux-x64" / "recheck"
    assert redos.analyzer_command() == [str(native), "agent"]


def test_the_jar_runs_on_java_when_the_native_build_cannot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A native build that is not executable (or absent) is passed over for the jar, run by the java on PATH."""
    monkeypatch.delenv("NETOPT_RECHECK", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/lib/jvm/bin/java" if name == "java" else None)
    jar = tmp_path / "node_modules" / "recheck-jar" / "recheck.jar"
    monkeypatch.setattr(redos, "TOOL_DIR", _tool_dir(tmp_path, native=False, jar=True))
    assert redos.analyzer_command() == ["/usr/lib/jvm/bin/java", "-jar", str(jar), "agent"]
    (tmp_path / "node_modules" / "recheck-linux-x64" / "recheck").unlink()
    (tmp_path / "node_modules" / "recheck-linux-x64" / "recheck").mkdir()  # a directory is searchable, not a program
    assert redos.analyzer_command() == ["/usr/lib/jvm/bin/java", "-jar", str(jar), "agent"]


def test_without_an_analyzer_a_regex_is_refused_with_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NETOPT_RECHECK", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(redos, "TOOL_DIR", _tool_dir(tmp_path, native=None, jar=True))
    assert redos.analyzer_command() is None, "a jar without java runs nowhere"
    monkeypatch.setattr(redos, "_AGENTS", {})  # this process has not looked for its agent yet
    verdict = redos.check.__wrapped__(r"^/v[0-9]+$")
    assert verdict.status == "unknown" and "not installed: run `make venv`" in verdict.reason


# -- the agent: one process, answers matched to their questions ---------------------------------------------------

_FAKE_AGENT = """
import json, sys
previous = None
for line in sys.stdin:
    request = json.loads(line)
    answer = {"jsonrpc": "2.0+push", "id": request["id"], "result": {"source": request["params"]["source"], "status": "safe"}}
    print(json.dumps({"jsonrpc": "2.0+push", "id": request["id"], "message": "progress"}))  # a push: no result
    if previous is not None:
        print(json.dumps(previous))  # a late copy of the answer to the question before
    print(json.dumps(answer), flush=True)
    previous = answer
"""


def test_the_agent_returns_the_answer_to_its_own_question_only() -> None:
    """Pushes and answers to earlier questions on the agent's stdout are skipped: each answer is matched by its id."""
    agent = redos._Agent([sys.executable, "-c", _FAKE_AGENT])
    try:
        assert [agent.check(source, "")["source"] for source in ("^/a$", "^/b$", "^/c$")] == ["^/a$", "^/b$", "^/c$"]
    finally:
        agent.close()


def test_a_new_agent_answers_with_recheck_itself() -> None:
    command = redos.analyzer_command()
    assert command is not None, "recheck is installed by make venv"
    agent = redos._Agent(command)
    try:
        assert agent.check("^/(a+)+$", "")["status"] == "vulnerable"
        assert agent.check("^/x+$", "")["status"] == "safe"
    finally:
        agent.close()


# -- boundary values -------------------------------------------------------------------------------------------------

def test_the_largest_id_kubernetes_accepts_is_accepted(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["run_as_user"] = str(MAX_ID)
    minimal["workloads"][1]["run_as_user"] = f"1000:{MAX_ID}"
    spec = parse_spec(minimal)
    assert spec.workload_user(spec.workloads[0]) == f"{MAX_ID}:{MAX_ID}"
    assert spec.workload_user(spec.workloads[1]) == f"1000:{MAX_ID}"
    minimal["workloads"][1]["run_as_user"] = f"1000:{MAX_ID + 1}"
    assert f"ids go up to {MAX_ID}" in _problems(minimal)["netopt:workloads[1].run_as_user"]


def test_spaces_in_arguments_and_environment_values_are_ordinary_text(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["command"] = ["/bin/server", "--greeting", "hello world"]
    minimal["workloads"][0]["env"] = {"GREETING": " hello\tworld "}
    spec = parse_spec(minimal)
    assert spec.workloads[0].command == ["/bin/server", "--greeting", "hello world"]
    assert spec.workloads[0].env == {"GREETING": " hello\tworld "}
    minimal["workloads"][0]["env"] = {"GREETING": "hello\x1fworld"}
    assert "the control character \\x1f at position 5" in _problems(minimal)["netopt:workloads[0].env.GREETING"]


class _Bounded(BaseModel):
    at_least: Annotated[float, Field(ge=2.0)] = 2.0
    above: Annotated[float, Field(gt=0.5)] = 1.0


def _error(**values: float) -> Any:
    with pytest.raises(ValidationError) as caught:
        _Bounded(**values)
    (error,) = caught.value.errors(include_url=False)
    return error


def test_a_bound_is_stated_as_written_a_whole_one_without_a_fraction() -> None:
    """`ge=2.0` reads "at least 2" (a whole number as a whole number), `gt=0.5` "greater than 0.5"."""
    low = _error(at_least=1.5)
    assert shape_messages.expected(low) == "a number of at least 2"
    assert shape_messages.message(low) == "must be at least 2, got 1.5"
    assert shape_messages.expected(_error(above=0.25)) == "a number greater than 0.5"


def test_a_value_fitting_no_alternative_says_each_expected_form_with_its_bound(minimal: dict[str, Any]) -> None:
    """The module's own example: a number of at least 0.001, or a list (one response time per replica)."""
    minimal["workloads"][1]["response_time_ms"] = 0
    assert _problems(minimal)["netopt:workloads[1].response_time_ms"] == "expected a number of at least 0.001 or a list, got 0"


# -- the spec's lookups -----------------------------------------------------------------------------------------------

def test_max_replicas_is_the_autoscaler_ceiling_on_kubernetes(minimal: dict[str, Any]) -> None:
    raw = _kubernetes(minimal)
    raw["kubernetes"] = {"autoscaling": {"api": {"max_replicas": 6}}}
    spec = parse_spec(raw)
    assert (spec.max_replicas("api"), spec.max_replicas("web")) == (6, 1)
    raw["target"], raw["network"] = "docker", minimal["network"]
    docker = parse_spec(raw)
    assert docker.max_replicas("api") == 2, "docker has no autoscaler: the declared replicas"


def test_model_copy_is_shallow_by_default_and_drops_the_cached_lookups(minimal: dict[str, Any]) -> None:
    spec = parse_spec(minimal)
    assert spec.workload("api").replicas == 2
    renamed = spec.model_copy(update={"environment": "other"})
    assert renamed.environment == "other" and renamed.workloads is spec.workloads, "pydantic's default: deep=False"
    fewer = spec.model_copy(update={"workloads": [spec.workloads[0].model_copy(update={"replicas": 3})]})
    assert fewer.workload("api").replicas == 3
    assert spec.model_copy(deep=True).workloads is not spec.workloads


# -- consistency problems: key path and fix --------------------------------------------------------------------------

def test_several_gateways_on_docker_are_refused_at_gateway_replicas(minimal: dict[str, Any]) -> None:
    minimal["gateway"]["replicas"] = 2
    message = _problems(minimal)["netopt:gateway.replicas"]
    assert "2 gateways cannot publish the same host port" in message and "use 1, or target kubernetes" in message
    parse_spec(_kubernetes(minimal))


def test_two_volumes_of_one_name_are_refused(minimal: dict[str, Any]) -> None:
    minimal["workloads"][1]["volumes"] = [{"name": "data", "path": "/var/data"}, {"name": "data", "path": "/var/cache"}]
    problems = _problems(minimal)
    assert problems == {"netopt:workloads[1].volumes[1].name": "duplicate volume name 'data' (also volumes[0]); rename one"}


def test_two_extra_ports_of_one_name_point_at_the_first(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["ports"] = [{"name": "metrics", "port": 9100}, {"name": "metrics", "port": 9101}]
    problems = _problems(minimal)
    assert problems == {"netopt:workloads[0].ports[1].name": "'metrics' already names ports[0]; give this port another name"}


def test_an_unknown_key_inside_a_list_item_is_answered_with_that_items_keys(minimal: dict[str, Any]) -> None:
    minimal["workloads"][0]["replica"] = 3
    minimal["routes"][0]["match"]["pathh"] = "/x/"
    problems = _problems(minimal)
    workload = problems["netopt:workloads[0].replica"]
    assert workload.startswith("unknown key. Did you mean 'replicas'? Known keys here: name, image, port, replicas,")
    match = problems["netopt:routes[0].match.pathh"]
    assert match.startswith("unknown key. Did you mean 'path'? Known keys here: host, path, path_type,")


def test_an_unknown_key_under_an_optional_or_keyed_section_is_reported_there(minimal: dict[str, Any]) -> None:
    """`health` is an optional union of probe kinds, `kubernetes.autoscaling` a mapping by workload name: the unknown
    key is still reported at its own path (the http probe's keys for an http probe)."""
    minimal["workloads"][0]["health"] = {"kind": "http", "pathh": "/healthz"}
    problems = _problems(minimal)
    assert problems["netopt:workloads[0].health.pathh"].startswith("unknown key. Did you mean 'path'? Known keys here: ")
    assert "kind, path, port" in problems["netopt:workloads[0].health.pathh"]
    raw = _kubernetes(minimal)
    del raw["workloads"][0]["health"]
    raw["kubernetes"] = {"autoscaling": {"api": {"max_replicas": 4, "min_replicas": 2}}}
    message = _problems(raw)["netopt:kubernetes.autoscaling.api.min_replicas"]
    assert message.startswith("unknown key."), message
    # The workload's name is the user's, not a field: the keys listed are the autoscaling entry's own.
    assert "Known keys here: " in message and "max_replicas" in message.split("Known keys here: ", 1)[1], message
    raw["kubernetes"] = {"autoscaling": {"api": {"max_replica": 4}}}
    assert "Did you mean 'max_replicas'?" in _problems(raw)["netopt:kubernetes.autoscaling.api.max_replica"]


def test_a_long_negative_number_is_described_by_its_digits_not_its_sign() -> None:
    """`-10**24` has 25 digits (the sign is none of them), as `10**24` has; a number short enough is shown as written."""
    assert shape_messages.describe(10**24) == "a number of 25 digits"
    assert shape_messages.describe(-(10**24)) == "a number of 25 digits"
    assert shape_messages.describe(-(10**23)) == "a number of 24 digits"  # 25 characters with its sign: too long to show
    assert shape_messages.describe(-(10**22)) == str(-(10**22))  # 24 characters: shown as written
