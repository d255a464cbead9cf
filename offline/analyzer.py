"""Run the policy pack the way the Pulumi engine runs it, against a stack recorded under Pulumi's mocks.

`analyze()` takes the resources `offline.program.run_program` recorded and, like the engine during
`pulumi preview --policy-pack policies --policy-pack-config <file>`:

1. starts a small Engine gRPC service (the address a plugin is given; it records Log calls) and the pack itself
   as the CLI's shim `pulumi-analyzer-policy-python` does: `python -u -m pulumi.policy <engine-address>
   <pack-dir>` (unbuffered: the pack writes its port without a flush), the venv's bin first on PATH, with the
   pack directory as working directory and the variables the CLI gives analyzer plugins (PULUMI_CONFIG,
   PULUMI_PROJECT, PULUMI_STACK, PULUMI_DRY_RUN, PULUMI_ORGANIZATION, PULUMI_CONFIG_SECRET_KEYS); the port is
   the first line the pack prints. The child's environment is built here (`pack_environment`), never inherited,
   so the caller's PYTHONUNBUFFERED, PYTHONPATH, PYTHONHOME or PATH cannot change whether or how the pack runs;
2. asks `GetPluginInfo` and `GetAnalyzerInfo`, then does the engine's part of configuration: parses the
   `--policy-pack-config` document, rejects unknown policy names and invalid enforcement levels, fills in schema
   defaults, and validates each policy's properties against the `configSchema` the pack declared (JSON schema,
   as the CLI does) — an invalid config raises `PolicyConfigError` and nothing is analyzed;
3. sends `Configure` with the reconciled config and `ConfigureStack` (stack, project, config, tags);
4. sends `Analyze` for every resource in registration order (the root `pulumi:pulumi:Stack` first) with its
   input properties, options and provider, then one `AnalyzeStack` with every resource's outputs, parent and
   dependencies;
5. stops the pack by its PID (terminate, then kill) and the Engine service, also when anything above fails.

Values unknown during preview are sent as the engine sends them (the unknown sentinel string). Under the mocks a
custom resource's outputs are its inputs (offline/program.py echoes them), so AnalyzeStack sees those.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from jsonschema import Draft7Validator  # type: ignore[import-untyped]
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, engine_pb2, engine_pb2_grpc

from offline.program import RecordedResource
from offline.stack_config import PROJECT_DIR, project_settings

POLICY_DIR = PROJECT_DIR / "policies"
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
STACK_TYPE = "pulumi:pulumi:Stack"
START_TIMEOUT_S = 30.0
MAX_ENV_STRING = 128 * 1024 - 64  # MAX_ARG_STRLEN, less the variable's name
_GRPC_OPTIONS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def level_name(level: int) -> str:
    """A wire enforcement level (analyzer.proto: ADVISORY 0, MANDATORY 1, DISABLED 2, REMEDIATE 3) as the config spells it."""
    return analyzer_pb2.EnforcementLevel.Name(level).lower()  # type: ignore[arg-type]


class PolicyConfigError(ValueError):
    """The --policy-pack-config document is invalid; the message lists every problem, as the CLI would."""


class PolicyPackError(RuntimeError):
    """The pack did not start or failed while analyzing; the message carries its stderr."""


@dataclass(frozen=True)
class Diagnostic:
    policy: str
    level: str
    resource: str  # the resource's name ("" for a stack-level violation without a URN)
    urn: str
    message: str
    description: str = ""
    pack: str = ""
    stage: str = "analyze"  # "analyze" (per resource) or "analyze_stack"

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "level": self.level, "resource": self.resource, "urn": self.urn, "message": self.message, "stage": self.stage}


@dataclass(frozen=True)
class NotApplicable:
    policy: str
    urn: str
    reason: str


@dataclass
class Analysis:
    pack: str
    version: str
    policies: dict[str, dict[str, Any]]  # name -> {"description", "level" (effective), "type", "schema"}
    config: dict[str, dict[str, Any]]  # name -> {"enforcementLevel", **properties}, as sent in Configure
    diagnostics: list[Diagnostic]
    not_applicable: list[NotApplicable]
    engine_log: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    analyzed: int = 0
    notes: list[str] = field(default_factory=list)

    def mandatory(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.level == "mandatory"]

    def violated(self) -> set[tuple[str, str]]:
        return {(d.policy, d.level) for d in self.diagnostics}


# -- the --policy-pack-config document ----------------------------------------------------------------------------

def load_policy_config(source: Path | str | Mapping[str, Any] | None) -> dict[str, Any]:
    """A --policy-pack-config document: a path to its JSON file, or the already-parsed mapping."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return dict(source)
    text = Path(source).read_text()
    if not text.strip():
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyConfigError(f"{source}: not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise PolicyConfigError(f"{source}: the policy pack config must be a JSON object of policy name -> level or settings")
    return document


def reconcile_policy_config(info: analyzer_pb2.AnalyzerInfo, document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The engine's handling of --policy-pack-config: parse, default, apply, validate. Returns what Configure gets."""
    problems: list[str] = []
    parsed: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for name, value in document.items():
        level: str | None
        if isinstance(value, str):
            level, props = value, {}
        elif isinstance(value, dict):
            props = {k: v for k, v in value.items() if k != "enforcementLevel"}
            level = value.get("enforcementLevel")
            if level is not None and not isinstance(level, str):
                problems.append(f"{name}: enforcementLevel must be a string, not {json.dumps(level)}")
                continue
        else:
            problems.append(f"{name}: {json.dumps(value)} is not a valid value; must be an enforcement level string or an object")
            continue
        if level is not None and level not in LEVELS:
            problems.append(f"{name}: '{level}' is not a valid enforcement level (one of {', '.join(LEVELS)})")
            continue
        parsed[name] = (level, props)
    known = {p.name: p for p in info.policies}
    for name in parsed:
        if name != "all" and name not in known:
            problems.append(f"{name}: no such policy in pack {info.name} (policies: {', '.join(sorted(known))})")
    if "all" in parsed and parsed["all"][1]:
        problems.append("all: only an enforcement level can be set for all policies, not properties")
    result: dict[str, dict[str, Any]] = {}
    for name, policy in known.items():
        properties = {k: _plain(v) for k, v in policy.configSchema.properties.items()}
        defaults = {k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v}
        result[name] = {"enforcementLevel": level_name(policy.enforcementLevel), **defaults}
        for initial_name, initial in info.initialConfig.items():
            if initial_name == name:
                result[name].update(_plain(initial.properties))
        if "all" in parsed and parsed["all"][0]:
            result[name]["enforcementLevel"] = parsed["all"][0]
        if name in parsed:
            chosen, settings = parsed[name]
            if chosen:
                result[name]["enforcementLevel"] = chosen
            result[name].update(settings)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if policy.configSchema.required:
            schema["required"] = list(policy.configSchema.required)
        values = {k: v for k, v in result[name].items() if k != "enforcementLevel"}
        for error in sorted(Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path)):
            where = ".".join(str(p) for p in error.path)
            problems.append(f"{name}: {where + ': ' if where else ''}{error.message}")
    if problems:
        raise PolicyConfigError(f"invalid policy pack config for {info.name}:\n" + "\n".join(f"  - {p}" for p in problems))
    return result


def _plain(value: Any) -> Any:
    """A protobuf Struct/Value as plain Python data."""
    if isinstance(value, struct_pb2.Struct):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, struct_pb2.ListValue):
        return [_plain(v) for v in value]
    return value


# -- wire form of resources ---------------------------------------------------------------------------------------

def _wire(value: Any, path: str = "") -> Any:
    """Recorded property values as the engine marshals them for analyzers (unknown -> the sentinel string)."""
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    if isinstance(value, Mapping):
        return {str(k): _wire(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_wire(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"property {path or '(root)'}: cannot send a {type(value).__name__} to an analyzer")


def _struct(properties: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(_wire(properties))
    return struct


def _stack_resource(resources: list[RecordedResource], stack: str, project: str) -> RecordedResource:
    default = f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"
    urn = next((r.parent for r in resources if r.parent.endswith(f"::{STACK_TYPE}::{project}-{stack}")), default)
    return RecordedResource(type=STACK_TYPE, name=f"{project}-{stack}", urn=urn, parent="", custom=False, inputs={})


def _providers(resources: list[RecordedResource], stack: str, project: str) -> dict[str, analyzer_pb2.AnalyzerProviderResource]:
    """Explicit providers by reference, and a default provider per package (as the engine creates one)."""
    by_urn = {r.urn: r for r in resources}
    providers: dict[str, analyzer_pb2.AnalyzerProviderResource] = {}
    for r in resources:
        if not r.custom or r.type.startswith("pulumi:providers:"):
            continue
        reference = r.provider
        if reference and reference not in providers:
            urn = reference.rsplit("::", 1)[0]
            record = by_urn.get(urn)
            providers[reference] = analyzer_pb2.AnalyzerProviderResource(
                type=record.type if record else urn.split("::")[-2], urn=urn, name=urn.rsplit("::", 1)[-1],
                properties=_struct(record.inputs if record else {}))
        elif not reference:
            package = r.type.split(":", 1)[0]
            key = f"default:{package}"
            if key not in providers:
                urn = f"urn:pulumi:{stack}::{project}::pulumi:providers:{package}::default"
                providers[key] = analyzer_pb2.AnalyzerProviderResource(
                    type=f"pulumi:providers:{package}", urn=urn, name="default", properties=_struct({}))
    return providers


def _options(record: RecordedResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=record.protect, deleteBeforeReplace=record.delete_before_replace,
        deleteBeforeReplaceDefined=record.delete_before_replace, parent=record.parent)


# -- processes and services ---------------------------------------------------------------------------------------

class _Engine(engine_pb2_grpc.EngineServicer):
    """The engine's gRPC service as a plugin sees it: records Log calls (the pack is not expected to make any)."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.root = ""

    def Log(self, request: Any, context: Any) -> empty_pb2.Empty:  # noqa: N802 - gRPC method name
        self.log.append(f"{request.severity}:{request.urn}:{request.message}")
        return empty_pb2.Empty()

    def GetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        return engine_pb2.GetRootResourceResponse(urn=self.root)

    def SetRootResource(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method name
        self.root = request.urn
        return engine_pb2.SetRootResourceResponse()


@contextmanager
def engine_service() -> Iterator[tuple[str, _Engine]]:
    engine = _Engine()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), options=_GRPC_OPTIONS)
    engine_pb2_grpc.add_EngineServicer_to_server(engine, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", engine
    finally:
        server.stop(grace=None)


def _read_first_line(stream: IO[bytes], timeout: float) -> bytes | None:
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def stop_process(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL if it has not exited within grace_s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace_s)


def pack_command(python: str, engine_address: str, pack_dir: Path) -> list[str]:
    """The command line of the CLI's Python analyzer shim (`pulumi-analyzer-policy-python`): `-u`, unbuffered."""
    return [python, "-u", "-m", "pulumi.policy", engine_address, str(pack_dir)]


def pack_environment(python: str, env: Mapping[str, str]) -> dict[str, str]:
    """The pack's whole environment, built from scratch: the interpreter's bin directory first on a minimal PATH
    (as the shim puts the virtualenv's bin first), HOME, a UTF-8 locale, TMPDIR, the pack's own documented
    switches (NETOPT_POLICY_*) and the PULUMI_* variables in `env`. Nothing else of the caller's leaks in."""
    child = {
        "PATH": os.pathsep.join([str(Path(python).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "TMPDIR": tempfile.gettempdir(),
    }
    child.update({k: v for k, v in os.environ.items() if k.startswith("NETOPT_POLICY_")})
    child.update(env)
    return child


@contextmanager
def policy_pack(engine_address: str, env: Mapping[str, str], pack_dir: Path = POLICY_DIR,
                python: str = sys.executable) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The pack's gRPC server, started as the CLI starts a Python pack; yields (port, process); always stopped."""
    stderr_path = Path(tempfile.gettempdir()) / f"netopt-policy-{os.getpid()}-{threading.get_ident()}.stderr"
    with stderr_path.open("w+b") as stderr:
        process = subprocess.Popen(
            pack_command(python, engine_address, pack_dir),
            cwd=pack_dir, env=pack_environment(python, env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr)
        try:
            assert process.stdout is not None
            line = _read_first_line(process.stdout, START_TIMEOUT_S)
            if not line or not line.strip().isdigit():
                stop_process(process)
                stderr.seek(0)
                detail = stderr.read().decode(errors="replace").strip()
                raise PolicyPackError(f"the policy pack in {pack_dir} did not start (first stdout line {line!r}, exit {process.poll()}):\n{detail}")
            yield int(line), process
        finally:
            stop_process(process)
            if process.stdout is not None:
                process.stdout.close()
    stderr_path.unlink(missing_ok=True)


# -- the analysis -------------------------------------------------------------------------------------------------

def analyze(
    resources: list[RecordedResource],
    *,
    stack: str,
    policy_config: Path | str | Mapping[str, Any] | None = None,
    config: Mapping[str, str] | None = None,
    project: str | None = None,
    pack_dir: Path = POLICY_DIR,
    dry_run: bool = True,
    organization: str = "organization",
) -> Analysis:
    """Analyze recorded resources with the pack exactly as `pulumi preview --policy-pack` would; see the module doc."""
    project = project or project_settings()["name"]
    config = dict(config or {})
    document = load_policy_config(policy_config)
    started = time.perf_counter()
    stack_record = _stack_resource(resources, stack, project)
    ordered = [stack_record, *resources]
    providers = _providers(resources, stack, project)
    notes = []
    config_json = json.dumps(config)
    if len(config_json.encode()) >= MAX_ENV_STRING:
        # Linux refuses to exec with one environment string over 128 KiB (E2BIG). This pack never reads stack
        # config from the environment (ConfigureStack still carries it), so a huge generated stack omits it.
        notes.append(f"PULUMI_CONFIG omitted: {len(config_json)} bytes exceed the {MAX_ENV_STRING} bytes one environment string may hold")
        config_json = "{}"
    env = {
        "PULUMI_CONFIG": config_json,
        "PULUMI_CONFIG_SECRET_KEYS": "[]",
        "PULUMI_PROJECT": project,
        "PULUMI_STACK": stack,
        "PULUMI_ORGANIZATION": organization,
        "PULUMI_DRY_RUN": "true" if dry_run else "false",
    }
    with engine_service() as (engine_address, engine), policy_pack(engine_address, env, pack_dir) as (port, process):
        timings = {"start_s": time.perf_counter() - started}
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=_GRPC_OPTIONS)
        try:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT_S)
            stub.GetPluginInfo(empty_pb2.Empty())
            info = stub.GetAnalyzerInfo(empty_pb2.Empty())
            reconciled = reconcile_policy_config(info, document)
            configure = analyzer_pb2.ConfigureAnalyzerRequest()
            for name, values in reconciled.items():
                entry = configure.policyConfig[name]
                entry.enforcementLevel = analyzer_pb2.EnforcementLevel.Value(values["enforcementLevel"].upper())
                entry.properties.update({k: v for k, v in values.items() if k != "enforcementLevel"})
            stub.Configure(configure)
            _configure_stack(stub, stack, project, organization, dry_run, config)
            # The engine's side: marshal every request first, so the timings below are the pack's (plus gRPC).
            requests, stack_request = _requests(ordered, providers)
            cpu_before = _cpu_seconds(process.pid)
            client_before = time.thread_time()  # this harness's own gRPC client, which stands in for the engine's
            t0 = time.perf_counter()
            diagnostics: list[Diagnostic] = []
            not_applicable: list[NotApplicable] = []
            names = {r.urn: r.name for r in ordered}
            for record, request in zip(ordered, requests, strict=True):
                response = stub.Analyze(request)
                _collect(response, record.urn, names, "analyze", diagnostics, not_applicable)
            timings["analyze_s"] = time.perf_counter() - t0
            timings["client_cpu_s"] = time.thread_time() - client_before
            t0 = time.perf_counter()
            response = stub.AnalyzeStack(stack_request)
            _collect(response, "", names, "analyze_stack", diagnostics, not_applicable)
            timings["analyze_stack_s"] = time.perf_counter() - t0
            timings["pack_cpu_s"] = _cpu_seconds(process.pid) - cpu_before
            if process.poll() is not None:
                raise PolicyPackError(f"the policy pack exited during the analysis (exit {process.returncode})")
        except grpc.RpcError as error:
            raise PolicyPackError(f"the policy pack failed: {error}") from None
        finally:
            channel.close()
    timings["total_s"] = time.perf_counter() - started
    effective = {p.name: {"description": p.description, "level": reconciled[p.name]["enforcementLevel"],
                          "type": "stack" if p.policy_type == analyzer_pb2.POLICY_TYPE_STACK else "resource",
                          "schema": {k: _plain(v) for k, v in p.configSchema.properties.items()}} for p in info.policies}
    return Analysis(info.name, info.version, effective, reconciled, diagnostics, not_applicable, engine.log, timings, len(ordered), notes)


def _requests(ordered: list[RecordedResource], providers: Mapping[str, analyzer_pb2.AnalyzerProviderResource]
              ) -> tuple[list[analyzer_pb2.AnalyzeRequest], analyzer_pb2.AnalyzeStackRequest]:
    """Analyze requests (inputs) per resource, and the AnalyzeStack request (outputs, parents, dependencies)."""
    requests = []
    stack_request = analyzer_pb2.AnalyzeStackRequest()
    for record in ordered:
        provider = providers.get(record.provider or f"default:{record.type.split(':', 1)[0]}") if record.custom else None
        inputs, options = _inputs_struct(record), _options(record)
        requests.append(analyzer_pb2.AnalyzeRequest(type=record.type, urn=record.urn, name=record.name,
                                                    properties=inputs, options=options, provider=provider))
        stack_request.resources.add(  # built in place: append() would copy a whole built resource again
            type=record.type, urn=record.urn, name=record.name, properties=_outputs_struct(record, inputs), options=options,
            provider=provider, parent=record.parent, dependencies=record.dependencies)
    return requests, stack_request


def _inputs_struct(record: RecordedResource) -> struct_pb2.Struct:
    """The inputs in wire form: as the SDK sent them when the record still holds that form (unread, so unchanged:
    no second conversion), else marshalled from the dict (a test or fixture may have edited it)."""
    wire = record.wire_inputs()
    return wire if wire is not None else _struct(record.inputs)


def _outputs_struct(record: RecordedResource, inputs: struct_pb2.Struct) -> struct_pb2.Struct:
    """The outputs the engine holds: those registered; a custom resource's are its inputs under the mocks."""
    wire = record.wire_outputs()
    if wire is not None:
        return wire if (len(wire.fields) or not record.custom) else inputs
    return _struct(record.outputs) if (record.outputs or not record.custom) else inputs


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _configure_stack(stub: analyzer_pb2_grpc.AnalyzerStub, stack: str, project: str, organization: str, dry_run: bool,
                     config: Mapping[str, str]) -> None:
    request = analyzer_pb2.AnalyzerStackConfigureRequest(
        stack=stack, project=project, organization=organization, dry_run=dry_run, config=dict(config),
        tags={"pulumi:project": project, "pulumi:runtime": "python"})
    try:
        stub.ConfigureStack(request)
    except grpc.RpcError as error:  # older packs do not implement it; the engine then carries on
        if error.code() != grpc.StatusCode.UNIMPLEMENTED:
            raise


def _collect(response: analyzer_pb2.AnalyzeResponse, urn: str, names: Mapping[str, str], stage: str,
             diagnostics: list[Diagnostic], not_applicable: list[NotApplicable]) -> None:
    for d in response.diagnostics:
        target = d.urn or urn
        diagnostics.append(Diagnostic(policy=d.policyName, level=level_name(d.enforcementLevel), resource=names.get(target, ""), urn=target,
                                      message=d.message, description=d.description, pack=d.policyPackName, stage=stage))
    for n in response.not_applicable:
        not_applicable.append(NotApplicable(policy=n.policy_name, urn=urn, reason=n.reason))


# -- convenience: a stack (optionally modified) end to end ---------------------------------------------------------

def policy_config_path(environment: str, pack_dir: Path = POLICY_DIR) -> Path:
    return pack_dir / "config" / f"{environment}.json"


def analyze_config(config: Mapping[str, str], stack: str, policy_config: Path | str | Mapping[str, Any] | None,
                   resources: list[RecordedResource] | None = None) -> Analysis:
    """Run the program with `config` (CLI form) under mocks and analyze what it registers."""
    from offline.program import run_program

    recorded = resources if resources is not None else run_program(dict(config), stack)
    return analyze(recorded, stack=stack, policy_config=policy_config, config=config)


def _main(argv: list[str] | None = None) -> int:
    """python -m offline.analyzer (--stack S | --generated N) [--policy-config FILE]: the pack's verdicts and timings."""
    import argparse

    from offline.program import run_program
    from offline.stack_config import cli_config, stack_file

    parser = argparse.ArgumentParser(prog="python -m offline.analyzer", description=_main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stack", help="a shipped stack (stacks/Pulumi.<stack>.yaml)")
    source.add_argument("--generated", type=int, metavar="N", help="bench/generate.py's stack of N workloads (a scale benchmark)")
    parser.add_argument("--replicas", type=int, default=2, help="replicas per generated workload (default 2)")
    parser.add_argument("--policy-config", help="default: policies/config/<netopt:environment>.json (prod.json for --generated)")
    parser.add_argument("--results", type=Path, default=PROJECT_DIR / "bench" / "results",
                        help="with --generated: where pack_scale.json (the timings, for bench/check.py) goes (default bench/results)")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 whatever the verdicts (make bench: the generated stack violates prod's gates by design); errors still fail")
    parser.add_argument("--compare-stock", action="store_true",
                        help="analyze again on pulumi-policy's stock path (NETOPT_POLICY_NO_MEMO=1) and compare the verdicts (exit 2 if they differ)")
    args = parser.parse_args(argv)
    if args.generated:
        from bench.generate import generated_cli_config

        stack, config = "scale", generated_cli_config(args.generated, args.replicas)
        policy_config: Path | str = args.policy_config or policy_config_path("prod")
    else:
        stack, config = args.stack, cli_config(stack_file(args.stack))
        policy_config = args.policy_config or policy_config_path(config.get("netopt:environment", args.stack))
    load_before = _load()
    started = time.perf_counter()
    resources = run_program(config, stack)
    program_s = time.perf_counter() - started
    analysis = analyze(resources, stack=stack, policy_config=policy_config, config=config)
    for d in analysis.diagnostics:
        print(f"[{d.level}] {d.policy} {d.resource}: {d.message.split(chr(10), 1)[-1]}")
    for note in analysis.notes:
        print(f"note: {note}")
    print(f"{len(analysis.diagnostics)} violation(s), {len(analysis.mandatory())} mandatory; {analysis.analyzed} resources, "
          f"{len(analysis.policies)} policies. Program under mocks {program_s:.2f}s (not the pack's work); pack: {_timings(analysis)}")
    if args.generated:
        print(f"wrote {write_scale_results(args.results, args.generated, analysis, program_s, argv, load_before)}")
    if args.compare_stock:
        stock = _stock_analysis(resources, stack, policy_config, config)
        same = stock.diagnostics == analysis.diagnostics and sorted(map(repr, stock.not_applicable)) == sorted(map(repr, analysis.not_applicable))
        print(f"stock path (NETOPT_POLICY_NO_MEMO=1): {_timings(stock)}")
        print(f"verdicts {'identical' if same else 'DIFFER'}: {len(stock.diagnostics)} violation(s) and {len(stock.not_applicable)} "
              f"not-applicable on the stock path, {len(analysis.diagnostics)} and {len(analysis.not_applicable)} with the fast path")
        if not same:
            return 2
    return 1 if analysis.mandatory() and not args.exit_zero else 0


def write_scale_results(results: Path, workloads: int, analysis: Analysis, program_s: float, argv: list[str] | None,
                        load_before: str) -> Path:
    """Add this run's pack timings for `workloads` to <results>/pack_scale.json (other sizes' entries are kept)."""
    path = results / "pack_scale.json"
    document: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    t = analysis.timings
    document.update({"command": "python -m offline.analyzer " + " ".join(argv if argv is not None else sys.argv[1:]),
                     "when": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg_before": load_before,
                     "loadavg_after": _load(),
                     "cpus": os.cpu_count()})
    document.setdefault("generated", {})[str(workloads)] = {
        "resources": analysis.analyzed, **t, "analyze_ms_per_resource": 1000 * t["analyze_s"] / analysis.analyzed,
        "program_s": program_s, "violations": len(analysis.diagnostics), "mandatory": len(analysis.mandatory())}
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n")
    return path


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _timings(analysis: Analysis) -> str:
    t = analysis.timings
    return (f"start {t['start_s']:.2f}s, Analyze x{analysis.analyzed} {t['analyze_s']:.2f}s, AnalyzeStack {t['analyze_stack_s']:.2f}s "
            f"(pack CPU for both {t['pack_cpu_s']:.2f}s; this harness's gRPC client, within Analyze: {t.get('client_cpu_s', 0):.2f}s CPU), "
            f"total with start and marshalling {t['total_s']:.2f}s")


def _stock_analysis(resources: list[RecordedResource], stack: str, policy_config: Path | str, config: Mapping[str, str]) -> Analysis:
    """The same analysis with the pack's fast path switched off (the pack inherits this process's environment)."""
    previous = os.environ.get("NETOPT_POLICY_NO_MEMO")
    os.environ["NETOPT_POLICY_NO_MEMO"] = "1"
    try:
        return analyze(resources, stack=stack, policy_config=policy_config, config=config)
    finally:
        if previous is None:
            del os.environ["NETOPT_POLICY_NO_MEMO"]
        else:
            os.environ["NETOPT_POLICY_NO_MEMO"] = previous


if __name__ == "__main__":
    sys.exit(_main())

