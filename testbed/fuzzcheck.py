"""The differential checks one fuzz example runs; `tests/test_fuzz.py` and `bench/fuzz.py` share them.

* A valid config (validation passes) renders a config that Debian's nginx accepts (it parses and starts), and
  real nginx routes every generated request where `testbed.nginx_oracle` says: the JSON access log's `route`, the
  status (404 for no route, 403 for a client outside `allowed_sources`, else 200 or a limit's 429) and the replica
  that answered (one of the route's workloads). Both targets run the renderer's text unedited; only the address
  map is loopback (one shared backend thread, a distinct port per replica, so the answering workload is known).
* An invalid config gives one report that names every injected problem (and nothing else), in process; and, for a
  sample, through the real entry point `python -m offline.plan` on a stack file in a copy of the project: exit 1,
  the report on stderr, no traceback, nothing written under build/.

A check returns `Finding`s instead of raising, so a long run can count them; `category` groups findings of one
cause. A "valid" draw that is invalid for a reason the generator knows of (names that collide, a regex PCRE2
refuses) has its report checked and then raises `InvalidDrawError`: nginx never ran, so the example must be redrawn
(the test rejects it, the benchmark counts it), never counted as a pass.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from components.plan.build import build_plan
from components.plan.deployment import deployment_of
from components.render.nginx import render_proxy
from components.spec.redos import catastrophic_backtracking
from components.spec.schema import Spec
from components.spec.validation import SpecError, parse_spec
from testbed.backend import BackendThread, ReplicaConfig
from testbed.fuzzspecs import Generated, collision_paths
from testbed.gateway import host_runtime, parse_access_log
from testbed.nginx_oracle import Request, choose_route, is_allowed, pcre2_compiles
from testbed.nginx_runner import NginxRunner

PROJECT_DIR = Path(__file__).resolve().parent.parent
POOL_SIZE = 16
_TAGS = itertools.count(1)


@dataclass(frozen=True)
class Finding:
    category: str
    detail: str

    def __str__(self) -> str:
        return f"{self.category}: {self.detail}"


class InvalidDrawError(Exception):
    """The drawn stack is invalid for a known reason and its report names exactly that: nothing ran on nginx."""


class BackendPool:
    """One backend thread for a whole run: `POOL_SIZE` replicas on ephemeral loopback ports, reused by every spec."""

    _shared: BackendPool | None = None

    def __init__(self) -> None:
        self.thread = BackendThread([ReplicaConfig(f"p{i}") for i in range(POOL_SIZE)]).start()
        self.addresses = [self.thread.addresses[f"p{i}"] for i in range(POOL_SIZE)]

    @classmethod
    def shared(cls) -> BackendPool:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def address_map(self, spec: Spec) -> tuple[dict[str, list[str]], dict[str, str]]:
        """A distinct pool address per replica (the Kubernetes plan uses index 0, the Service); address -> workload."""
        free = iter(self.addresses)
        addresses = {w.name: [next(free) for _ in range(w.replicas)] for w in spec.workloads}
        return addresses, {a: name for name, members in addresses.items() for a in members}


def _issue_paths(error: SpecError) -> list[str]:
    return [issue.path for issue in error.issues]


def _covers(path: str, expected: str) -> bool:
    return path == expected or path.startswith(expected + ".") or path.startswith(expected + "[")


def _related(path: str, tolerated: str) -> bool:
    """A problem reported at a tolerated key, inside it or at the object holding it (`rate_limits[1]` for `.name`)."""
    return _covers(path, tolerated) or _covers(tolerated, path)


def check_invalid(raw: dict[str, Any], expected: set[str]) -> list[Finding]:
    """parse_spec names every injected problem in one report, and only problems we know the config has."""
    try:
        parse_spec(raw)
    except SpecError as error:
        paths = _issue_paths(error)
        findings = [Finding(f"report misses a problem at {_shape(want)}", f"{want} not in the report:\n{error.report()}")
                    for want in sorted(expected) if not any(_covers(p, want) for p in paths)]
        tolerated = expected | collision_paths(raw) | _pcre2_invalid_paths(raw)  # a drawn regex PCRE2 refuses is a known problem too
        tolerated |= _backtracking_paths(raw)  # and one the ReDoS analyzer refuses (drawn `\d+\d+` is quadratic)
        findings += [Finding(_refusal(raw, p, "report names an unexpected problem"), f"{p}:\n{error.report()}")
                     for p in paths if not any(_related(p, t) for t in tolerated)]
        return findings
    return [Finding(f"invalid config accepted ({', '.join(sorted(_shape(p) for p in expected))})", f"expected problems at {sorted(expected)}")]


def _shape(path: str) -> str:
    """`netopt:routes[3].match.headers.X-A` -> `routes[].match.headers`: one category for every index."""
    return re.sub(r"\.headers\..*$", ".headers", re.sub(r"\[\d+\]", "[]", path.removeprefix("netopt:")))


def _refusal(raw: dict[str, Any], path: str, category: str) -> str:
    """Name a refusal of a regex PCRE2 compiles (nginx would accept it) apart from other refusals."""
    found = re.fullmatch(r"netopt:routes\[(\d+)\]\.match", path)
    match = raw["routes"][int(found.group(1))]["match"] if found else {}
    if match.get("path_type") == "regex" and pcre2_compiles(match["path"]):
        return f"{category}: a regex PCRE2 (nginx) accepts"
    return category


def _pcre2_invalid_paths(raw: dict[str, Any]) -> set[str]:
    return {f"netopt:routes[{i}].match" for i, r in enumerate(raw["routes"])
            if r["match"].get("path_type") == "regex" and not pcre2_compiles(r["match"]["path"])}


def _backtracking_paths(raw: dict[str, Any]) -> set[str]:
    """Routes whose regex recheck (the ReDoS analyzer validation runs, not ours) finds super-linear: refused by design."""
    return {f"netopt:routes[{i}].match" for i, r in enumerate(raw["routes"])
            if r["match"].get("path_type") == "regex" and pcre2_compiles(r["match"]["path"])
            and catastrophic_backtracking(r["match"]["path"]) is not None}


def check_valid(generated: Generated, requests: list[Request]) -> list[Finding]:
    """Validation accepts the config (or refuses only colliding names); nginx parses and starts it; nginx routes as the oracle."""
    raw = generated.raw
    invalid_regexes = _pcre2_invalid_paths(raw) | _backtracking_paths(raw)
    if invalid_regexes:  # a regex PCRE2 refuses (e.g. one group name twice): an invalid config, to be reported
        findings = check_invalid(raw, invalid_regexes)
        if findings:
            return findings
        raise InvalidDrawError(f"a regex PCRE2 refuses at {sorted(invalid_regexes)} (reported as such)")
    try:
        spec = parse_spec(raw)
    except SpecError as error:
        tolerated = collision_paths(raw)
        untolerated = [p for p in _issue_paths(error) if not any(_related(p, t) for t in tolerated)]
        if untolerated:
            return [Finding(_refusal(raw, untolerated[0], "valid config refused"), error.report())]
        raise InvalidDrawError(f"names collide at {sorted(_issue_paths(error))} (reported as such)") from None
    return _run_on_nginx(spec, requests)


def _nginx_error(output: str) -> str:
    """nginx's message without file, line and quoted names: one category per cause."""
    first = next((line for line in output.splitlines() if "[emerg]" in line or "[alert]" in line), output.strip()[:200])
    first = re.sub(r"^.*?\[(emerg|alert)\] \d+#\d+: ", "", first)
    return re.sub(r'"[^"]*"', '"…"', re.sub(r" in \S+:\d+$", "", first))


class _ParseOnStart(NginxRunner):
    """Starting nginx parses the config exactly as `nginx -t` does (and a rejected config fails the start with the
    same [emerg] line); skipping the separate `-t` run halves the processes spawned per example."""

    def _check(self) -> None:
        return None


def _run_on_nginx(spec: Spec, requests: list[Request]) -> list[Finding]:
    pool = BackendPool.shared()
    addresses, workload_of = pool.address_map(spec)
    prefix = tempfile.mkdtemp(prefix="netopt-fuzz-")
    try:
        runtime = host_runtime(prefix, worker_processes="1")
        conf = render_proxy(build_plan(spec, deployment_of(spec)).gateway, addresses, runtime)
        runner = _ParseOnStart(conf, prefix=prefix, listen=[("127.0.0.1", runtime.listen_port)])
        try:
            runner.start()
        except RuntimeError as error:
            if "[emerg]" in str(error):
                return [Finding(f"nginx rejects a valid config: {_nginx_error(str(error))}", str(error)[-600:])]
            return [Finding("nginx did not start", str(error)[-600:])]
        try:
            sent = _send(runtime.listen_port, requests)
        finally:
            runner.stop()  # a graceful quit flushes the access log
        log = {line.uri.rsplit("fz=", 1)[-1]: line for line in parse_access_log(Path(runtime.access_log).read_text())}
        return [f for tag, (request, status) in sent.items() for f in _compare(spec, request, status, log.get(tag), workload_of)]
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


def _send(port: int, requests: list[Request]) -> dict[str, tuple[Request, int]]:
    """Send each request once (one keep-alive connection per source address); tag -> (request, status)."""
    connections: dict[str, http.client.HTTPConnection] = {}
    sent = {}
    try:
        for request in requests:
            tag = str(next(_TAGS))
            if request.source not in connections:
                connections[request.source] = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(request.source, 0))
            connection = connections[request.source]
            headers = dict(request.headers) | {"Host": request.host}
            body = b"x" if request.method in ("POST", "PUT", "PATCH") else None
            try:
                connection.request(request.method, f"{request.path}?fz={tag}", body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.will_close:
                    connection.close()
                    del connections[request.source]
            except (OSError, http.client.HTTPException):  # reported as status -1
                connection.close()
                del connections[request.source]
                status = -1
            sent[tag] = (request, status)
    finally:
        for connection in connections.values():
            connection.close()
    return sent


def _describe(request: Request) -> str:
    headers = f" headers={dict(request.headers)}" if request.headers else ""
    return f"{request.method} {request.host}{request.path} from {request.source}{headers}"


def _compare(spec: Spec, request: Request, status: int, line: Any, workload_of: dict[str, str]) -> list[Finding]:
    if not is_allowed(spec, request.source):
        return [] if status == 403 else [Finding("client outside allowed_sources not refused with 403", f"{_describe(request)}: status {status}")]
    want = choose_route(spec, request)
    got = line.route if line is not None else None
    if got != (want or ""):
        return [Finding("nginx routes differently from the oracle", f"{_describe(request)}: nginx {got!r} (status {status}), oracle {want!r}")]
    if want is None:
        return [] if status == 404 else [Finding("no route but not 404", f"{_describe(request)}: status {status}")]
    route = next(r for r in spec.routes if r.name == want)
    limited = route.rate_limit is not None or route.concurrency_limit is not None
    if status != 200 and not (status == 429 and limited):
        return [Finding("unexpected status", f"{_describe(request)} -> route {want}: status {status}")]
    if status == 200:
        answered = {workload_of.get(a.strip()) for a in line.upstream.split(",")}
        if not answered <= {b.workload for b in route.backends}:
            return [Finding("answered by a workload outside the route", f"{_describe(request)} -> {want}: upstream {line.upstream}")]
    return []


# ---- the real entry point -----------------------------------------------------------------------------------------

class ProjectCopy:
    """The program's code and Pulumi.yaml copied to a temp dir: stack files written there, `make plan`'s entry point
    run there, so the worktree's stacks/ and build/ are never touched."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netopt-fuzz-project-"))
        for name in ("components", "offline", "policies"):
            shutil.copytree(PROJECT_DIR / name, self.root / name, ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("Pulumi.yaml", "__main__.py"):
            shutil.copy(PROJECT_DIR / name, self.root / name)
        (self.root / "tools").symlink_to(PROJECT_DIR / "tools")  # the ReDoS analyzer `make venv` installed
        settings = yaml.safe_load((self.root / "Pulumi.yaml").read_text()) or {}
        self.stacks = self.root / str(settings.get("stackConfigDir", "."))
        self.stacks.mkdir(parents=True, exist_ok=True)

    def plan(self, stack: str, text: str) -> subprocess.CompletedProcess[str]:
        (self.stacks / f"Pulumi.{stack}.yaml").write_text(text)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8"}  # scrubbed: no PYTHONUNBUFFERED
        return subprocess.run([sys.executable, "-m", "offline.plan", "--stack", stack, "--no-policy"], cwd=self.root, env=env,
                              capture_output=True, text=True, timeout=300)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def stack_text(raw: dict[str, Any], duplicate_key: bool = False) -> str:
    """A stack file with the config under `netopt:*` keys; `duplicate_key` repeats `netopt:environment`."""
    text = yaml.safe_dump({"config": {f"netopt:{k}": v for k, v in raw.items()}}, sort_keys=False)
    if duplicate_key:
        text = text.replace("config:\n", "config:\n  netopt:environment: duplicate\n", 1)
    return text


def check_entry_point(project: ProjectCopy, raw: dict[str, Any], expected: set[str], duplicate_key: bool = False) -> list[Finding]:
    stack = f"fz{next(_TAGS)}"
    result = project.plan(stack, stack_text(raw, duplicate_key))
    where = f"(exit {result.returncode})\nstderr: {result.stderr[-800:]}\nstdout: {result.stdout[-300:]}"
    findings = []
    if result.returncode != 1:
        findings.append(Finding("entry point: invalid stack does not exit 1", where))
    if "Traceback" in result.stderr:
        findings.append(Finding("entry point: traceback", where))
    if result.stdout.strip():
        findings.append(Finding("entry point: printed a plan for an invalid stack", where))
    if (project.root / "build" / stack).exists():
        findings.append(Finding("entry point: wrote artifacts for an invalid stack", str(project.root / "build" / stack)))
    # A duplicate key may stop the report at the YAML level (nothing after it can be trusted): then it names that key.
    wanted = ["environment"] if duplicate_key else sorted(expected)
    findings += [Finding("entry point: report misses a problem", f"{want} {where}") for want in wanted if want not in result.stderr]
    (project.stacks / f"Pulumi.{stack}.yaml").unlink(missing_ok=True)
    return findings

