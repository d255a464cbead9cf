"""`make observe STACK=<s> LOG=<file or -> [FORMAT=json] [PATCH=<file>]`: the proxies' own traffic against the plan.

Reads the access logs (a file, or `-` for stdin) of the gateway and of the service proxies, one log or several
mixed — `for c in <gateway> <proxies...>; do docker logs $c 2>&1; done | make observe STACK=dev LOG=-` — in one
streaming pass (`components.observe.log_stats`), maps every upstream address back to its replica (Docker) or
workload (Kubernetes: give the Services' addresses with `--services`, e.g. `kubectl get services -n <ns> -o json`)
and prints per replica, per route and per call (edge) what was measured, the four scores from measured inputs
beside the declared ones, drift beyond the tolerance (response times, peaks, splits, call ratios and latencies)
and the capacity model at the observed peak. `--write-patch` writes the measured `response_time_ms` and `peak_rps`
as a stack-file fragment for review.

Exit status: 0 (also for a log with no request: it says so), 1 on invalid stack config, 2 for an unknown stack or
an unreadable log or services file. Never a traceback for bad input: malformed lines are counted and listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from components.observe.log_stats import DEFAULT_WINDOW_S, LogReader, LogStats
from components.observe.observation import DEFAULT_TOLERANCE, log_reader, measure, observation_document, target_view
from components.observe.observation_patch import patch_document
from components.plan.addressing import kubernetes_service_host
from components.plan.build import build_plan
from components.plan.deployment import deployment_of
from components.resources.pulumi_config import namespace_values
from components.spec.schema import Spec
from components.spec.validation import SpecError, parse_spec
from offline.observe_text import render_text
from offline.stack_config import PROJECT_DIR, StackNotFoundError, cli_config, stack_file


class InputError(Exception):
    """A file observe was told to read cannot be read or understood."""


def service_addresses(text: str, spec: Spec) -> dict[str, str]:
    """Service host -> ClusterIP, from `kubectl get services -o json` (a List or one Service) or hosts-file lines."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise InputError(f"the services file is not valid JSON: {error.msg} (line {error.lineno})") from None
        items = document.get("items", [document]) if isinstance(document, dict) else []
        out = {}
        for item in items:
            name = (item.get("metadata") or {}).get("name")
            address = (item.get("spec") or {}).get("clusterIP")
            if isinstance(name, str) and isinstance(address, str) and address != "None":
                out[kubernetes_service_host(spec, name)] = address
        return out
    out = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        for host in fields[1:]:
            out[host] = fields[0]
    return out


def read_log(stream: BinaryIO | Iterable[bytes], reader: LogReader) -> LogStats:
    for number, line in enumerate(stream, start=1):
        reader.feed(number, line)
    return reader.finish()


def _open_log(log: str) -> BinaryIO:
    if log == "-":
        return sys.stdin.buffer
    try:
        return open(log, "rb")  # closed by the caller
    except OSError as error:
        raise InputError(f"cannot read the log {log}: {error.strerror}") from None


def observe(stack: str, log: str, tolerance: float = DEFAULT_TOLERANCE, window_s: int = DEFAULT_WINDOW_S, services: str | None = None,
            project_dir: Path = PROJECT_DIR) -> tuple[dict[str, Any], Spec, LogStats, dict[str, Any]]:
    """(observation document, declared spec, log stats, the stack file's config values) for one log."""
    path = stack_file(stack, project_dir)
    spec = parse_spec(namespace_values(cli_config(path)))
    _, shares = target_view(spec)
    resolved = None
    if services is not None:
        try:
            resolved = service_addresses(Path(services).read_text(), spec)
        except OSError as error:
            raise InputError(f"cannot read the services file {services}: {error.strerror}") from None
    reader = log_reader(spec, build_plan(spec, deployment_of(spec)), resolved, window_s)
    stream = _open_log(log)
    try:
        stats = read_log(stream, reader)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    document = {"stack": stack, "source": log} | observation_document(spec, stats, shares, tolerance, window_s)
    raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return document, spec, stats, raw


def write_patch(out: Path, stack: str, spec: Spec, stats: LogStats, raw: dict[str, Any], source: str, tolerance: float) -> list[str]:
    patch, changes = patch_document(raw, spec, measure(spec, stats), tolerance)
    header = [f"# netopt observe: measured from {source} ({stats.requests} requests, {stats.call_lines} calls over {stats.span_s:.1f} s), "
              f"stack {stack}.",
              f"# Review, then replace these keys of stacks/Pulumi.{stack}.yaml with them. Changes:"]
    header += [f"#   {change}" for change in changes] or ["#   none (nothing measured differs from the declarations)"]
    out.write_text("\n".join(header) + "\n" + yaml.safe_dump(patch, sort_keys=False, default_flow_style=None, width=120))
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make observe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack", required=True)
    parser.add_argument("--log", required=True, help="access log file, or - for stdin")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="relative difference that is drift (0.2)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW_S, help=f"seconds of the sliding window of peak req/s ({DEFAULT_WINDOW_S})")
    parser.add_argument("--services", help="Kubernetes: the Services' addresses (kubectl get services -o json, or hosts lines)")
    parser.add_argument("--write-patch", type=Path, help="write measured response_time_ms and peak_rps as a stack-file fragment")
    args = parser.parse_args(argv)
    if not 0 < args.tolerance < 10 or not 1 <= args.window <= 3600:
        print("netopt: TOLERANCE must lie in (0, 10) (e.g. 0.2) and WINDOW in 1..3600 seconds", file=sys.stderr)
        return 2
    try:
        document, spec, stats, raw = observe(args.stack, args.log, args.tolerance, args.window, args.services)
        if args.write_patch is not None and stats.requests:
            write_patch(args.write_patch, args.stack, spec, stats, raw, args.log, args.tolerance)
            document["patch"] = str(args.write_patch)
    except StackNotFoundError as error:
        print(f"netopt: {error}", file=sys.stderr)
        return 2
    except SpecError as error:
        print(error.report(), file=sys.stderr)
        return 1
    except (InputError, OSError) as error:
        print(f"netopt: {error}", file=sys.stderr)
        return 2
    try:
        print(json.dumps(document, indent=2, sort_keys=True) if args.format == "json" else render_text(document))
    except BrokenPipeError:  # `| head`: the reader left; not an error of observe
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
