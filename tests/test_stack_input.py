"""Bad stack files through the real entry point: `python -m offline.plan --stack <s>` in a scratch copy of the project.

Every case is one clear report on stderr (file:line:column and the offending line for YAML problems, the key
path and fix for config problems), exit 1, no traceback, and nothing left under build/<s>/. The artifacts of a
good run are exactly one set: a switch from kubernetes to docker leaves no manifest behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from offline.program import ProgramError, run_program
from offline.stack_config import PROJECT_DIR, cli_config, stack_file

DEV = (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text()
PROD = (PROJECT_DIR / "stacks" / "Pulumi.prod.yaml").read_text()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project (program, components, offline runner; the plans run --no-policy) with its own stacks/ and build/."""
    root = tmp_path_factory.mktemp("project")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("components", "offline"):
        shutil.copytree(PROJECT_DIR / name, root / name, ignore=ignore)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(PROJECT_DIR / name, root / name)
    (root / "tools").symlink_to(PROJECT_DIR / "tools")  # the ReDoS analyzer `make venv` installed
    (root / "stacks").mkdir()
    return root


def plan(project: Path, stack: str, text: str | bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Write `text` as the stack file (if given) and run the plan on it as `make plan` does."""
    path = project / "stacks" / f"Pulumi.{stack}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONUNBUFFERED")}
    return subprocess.run([sys.executable, "-m", "offline.plan", "--stack", stack, "--no-policy"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def replace(old: str, new: str, base: str = DEV) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def assert_one_clear_report(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr
    assert result.stdout == ""
    for text in expected:
        assert text in result.stderr, f"{text!r} not in:\n{result.stderr}"
    return result.stderr


CASES: dict[str, tuple[Callable[[], str | bytes], tuple[str, ...]]] = {
    # item 8: parse errors name the file, line and column, show the line and a caret under the column
    "broken_yaml": (lambda: replace("      port: 3000\n", "      port: 3000: 1\n"),
                    ("stacks/Pulumi.s.yaml:24:17: mapping values are not allowed here", "    24 |       port: 3000: 1", "|" + " " * 17 + "^")),
    "unclosed_flow": (lambda: replace("    publish: {address: 127.0.0.1, port: 8080}\n", "    publish: {address: 127.0.0.1, port: 8080\n"),
                      ("stacks/Pulumi.s.yaml:",)),
    "tab_indent": (lambda: replace("  netopt:target: docker\n", "\tnetopt:target: docker\n"), ("stacks/Pulumi.s.yaml:4:1:", "not tabs")),
    "top_level_list": (lambda: "- config\n- netopt:environment: dev\n", ("stacks/Pulumi.s.yaml:1:1: the file holds a list",)),
    "config_is_a_list": (lambda: "config:\n  - netopt:environment: dev\n", ("stacks/Pulumi.s.yaml:1:1: config: holds a list",)),
    "yaml_date": (lambda: replace("  netopt:environment: dev\n", "  netopt:environment: 2024-01-01\n"),
                  ("stacks/Pulumi.s.yaml:3:23: netopt:environment: 2024-01-01 is a YAML date", "quote it")),
    "empty_file": (lambda: "", ("stacks/Pulumi.s.yaml:1:1: the file is empty",)),
    "comments_only": (lambda: "# nothing yet\n", ("the file is empty",)),
    "no_config": (lambda: "netopt:environment: dev\n", ("no `config:` section",)),
    "key_without_namespace": (lambda: replace("  netopt:target: docker\n", "  target: docker\n"), ("did you mean netopt:target?",)),
    "empty_value": (lambda: replace("  netopt:environment: dev\n", "  netopt:environment:\n"),
                    ("stacks/Pulumi.s.yaml:3:3: netopt:environment has no value",)),
    "non_text_key": (lambda: replace("      port: 3000\n", "      port: 3000\n      8080: true\n"), ("the key 8080 is not text",)),
    "recursive_alias": (lambda: replace("  netopt:target: docker\n", "  netopt:target: &t [*t]\n"), ("refers to itself",)),
    "not_utf8": (lambda: DEV.encode().replace(b"# dev", b"# d\xffev", 1), ("stacks/Pulumi.s.yaml:1:1: not UTF-8",)),
    # item 10: a key given twice names its path and both lines
    "duplicate_key": (lambda: replace("      port: 3000\n", "      port: 3000\n      port: 3001\n"),
                      ("netopt:workloads[0].port is given twice (lines 24 and 25)", "stacks/Pulumi.s.yaml:25:7:")),
    "duplicate_top_level_key": (lambda: DEV + "  netopt:target: kubernetes\n", ("netopt:target is given twice (lines 4 and",)),
    # item 9: a boolean is not a number
    "bool_port": (lambda: replace("      port: 3000\n", "      port: true\n"),
                  ("netopt:workloads[0].port: expected a whole number, got true (a boolean)",)),
    "bool_replicas": (lambda: replace("      replicas: 1\n", "      replicas: true\n"), ("netopt:workloads[0].replicas: expected a whole number",)),
    "bool_response_time": (lambda: replace("      response_time_ms: 25\n", "      response_time_ms: true\n"),
                           ("netopt:workloads[0].response_time_ms: expected a number or a list, got true (a boolean)",)),
    "yes_for_true": (lambda: replace("      response_time_ms: 25\n", "      response_time_ms: 25\n      read_only_root_fs: yes\n"),
                     ("netopt:workloads[0].read_only_root_fs: expected true or false, got the text 'yes'",)),
    "quoted_number": (lambda: replace("      port: 3000\n", "      port: '3000'\n"), ("write the number without quotes",)),
    "nan": (lambda: replace("      response_time_ms: 25\n", "      response_time_ms: .nan\n"), ("expected a finite number or a list",)),
    "inf": (lambda: replace("    listen_port: 8080\n", "    listen_port: .inf\n"), ("netopt:gateway.listen_port: expected a whole number",)),
    "huge_number": (lambda: replace("      max_concurrency: 64\n", "      max_concurrency: " + "9" * 400 + "\n"),
                    ("netopt:workloads[0].max_concurrency: must be at most 1000000000, got a number of 400 digits",)),
    # item 11: the user's key path, one problem per line with its fix, messages that name what to write
    "word_for_number": (lambda: replace("      response_time_ms: 25\n", "      response_time_ms: fast\n"),
                        ("netopt:workloads[0].response_time_ms: expected a number or a list, got the text 'fast'",)),
    "host_bits": (lambda: replace("    subnet: 10.42.0.0/24\n", "    subnet: 10.42.0.1/16\n"),
                  ("netopt:network.subnet: 10.42.0.1/16 has host bits set; did you mean 10.42.0.0/16?",)),
    "keepalive": (lambda: replace("keepalive: {connections: 32, timeout_s: 30,", "keepalive: {connections: 32, timeout_s: 90,"),
                  ("netopt:gateway.keepalive.timeout_s: 90s is not below the idle_timeout_s of workloads web (75s)", "set it below 75")),
    # shapes that ended in tracebacks further in
    "workloads_not_mappings": (lambda: re.sub(r"  netopt:workloads:\n(    .*\n|      .*\n)*", "  netopt:workloads: [1, web]\n", DEV),
                               ("netopt:workloads[0]: expected a mapping (key: value), got 1",
                                "netopt:workloads[1]: expected a mapping (key: value), got the text 'web'")),
    "backends_a_number": (lambda: re.sub(r"backends: \[[^\]]*\]", "backends: 5", DEV, count=1),
                          ("netopt:routes[0].backends: expected a list, got 5",)),
    "network_a_text": (lambda: re.sub(r"  netopt:network:\n(    .*\n)*", "  netopt:network: shop\n", DEV),
                       ("netopt:network: expected a mapping (key: value), got the text 'shop'",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_stack_file_is_one_clear_report(project: Path, case: str) -> None:
    text, expected = CASES[case]
    stderr = assert_one_clear_report(plan(project, "s", text()), *expected)
    problems = [line for line in stderr.splitlines() if line.startswith("  - ")]
    assert len(problems) == int(re.search(r"netopt: (\d+) problems?", stderr).group(1)), stderr  # type: ignore[union-attr]
    assert not (project / "build" / "s").exists()


def test_problems_are_one_per_line_with_a_caret_under_the_column(project: Path) -> None:
    dated = replace("  netopt:environment: dev\n", "  netopt:environment: 2024-01-01\n")
    text = replace("      port: 3000\n", "      port: 3000\n      port: 3001\n", dated)
    stderr = assert_one_clear_report(plan(project, "s", text), "2 problems in stacks/Pulumi.s.yaml")
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        found = re.match(r"  - stacks/Pulumi\.s\.yaml:(\d+):(\d+): ", line)
        if found:
            source, caret = lines[number + 1], lines[number + 2]
            assert source.strip().startswith(found.group(1) + " |")
            assert source.split(" | ", 1)[1] == text.splitlines()[int(found.group(1)) - 1]
            assert caret.index("^") - caret.index("|") - 2 == int(found.group(2)) - 1


def test_unknown_and_unsafe_stack_names_exit_2_and_touch_nothing(project: Path) -> None:
    (project / "build").mkdir(exist_ok=True)
    (project / "keep").mkdir(exist_ok=True)
    for name in ("nope", "../keep", "."):
        result = plan(project, name)
        assert result.returncode == 2 and "Traceback" not in result.stderr and f"no stack '{name}'" in result.stderr
    assert (project / "keep").is_dir()


def test_switching_target_leaves_no_stale_manifest(project: Path) -> None:
    build = project / "build" / "switch"
    first = plan(project, "switch", PROD)
    assert first.returncode == 0, first.stderr
    assert (build / "manifests.yaml").is_file() and any((build / "manifests" / "1-manifest").iterdir())
    second = plan(project, "switch", DEV)
    assert second.returncode == 0, second.stderr
    assert sorted(p.name for p in build.iterdir()) == ["nginx.conf", "proxies"], "no manifest is left behind"
    assert sorted(p.name for p in (build / "proxies").iterdir()) == ["api-proxy.nginx.conf", "auth-proxy.nginx.conf"]
    assert [p.name for p in build.parent.iterdir() if p.name.startswith(".")] == [], "no staging directory is left behind"


def test_failed_plan_removes_the_previous_artifacts_and_says_so(project: Path) -> None:
    build = project / "build" / "fails"
    assert plan(project, "fails", DEV).returncode == 0
    assert (build / "nginx.conf").is_file()
    result = plan(project, "fails", replace("      port: 3000\n", "      port: true\n"))
    assert_one_clear_report(result, "removed build/fails/ (artifacts of an earlier run")
    assert not build.exists()


def test_the_program_under_the_engine_reports_the_same(tmp_path: Path) -> None:
    """`__main__.py` reads the config the CLI hands it (JSON text per key) and ends with the same report, nothing registered."""
    config = cli_config(stack_file("dev"))
    workloads = config["netopt:workloads"]
    config["netopt:workloads"] = (workloads.replace('"port": 3000', '"port": true', 1)
                                  .replace('"response_time_ms": 40', '"response_time_ms": "fast"', 1))
    config["netopt:network"] = config["netopt:network"].replace("10.42.0.0/24", "10.42.0.1/16")
    assert config["netopt:workloads"] != workloads
    with pytest.raises(ProgramError) as caught:
        run_program(config, "dev")
    report = str(caught.value)
    assert report.startswith("netopt: 3 problems in the stack config (nothing was deployed or rendered):")
    assert "netopt:workloads[0].port: expected a whole number, got true (a boolean)" in report
    assert "netopt:workloads[1].response_time_ms: expected a number or a list, got the text 'fast'" in report
    assert "netopt:network.subnet: 10.42.0.1/16 has host bits set; did you mean 10.42.0.0/16?" in report


def test_plain_scalars_are_read_as_the_pulumi_cli_reads_them(tmp_path: Path) -> None:
    """YAML 1.2 as the CLI parses it: only true/false are booleans, no base-60 numbers, `1e3` is a number."""
    from offline.stack_yaml import load

    path = tmp_path / "values.yaml"
    path.write_text("v: [yes, no, on, off, true, False, '1:30', 1:30, 10, 0x1f, 1.5, .5, 1e3, -2.5e-1, 101:101, 1_000, 3.1.4]\n")
    assert load(path).value == {"v": ["yes", "no", "on", "off", True, False, "1:30", "1:30", 10, 31, 1.5, 0.5, 1000.0, -0.25,
                                      "101:101", 1000, "3.1.4"]}


def test_artifacts_failing_half_way_leave_the_previous_set_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new set is built beside the old one and swapped in only when complete."""
    from components.resources.app_network import analyse
    from components.targets import proxy_config
    from offline import artifacts
    from offline.manifests import ManifestError
    from tests.conftest import stack_spec

    out = tmp_path / "build" / "prod"
    out.mkdir(parents=True)
    (out / "nginx.conf").write_text("previous\n")
    (out / "manifests.yaml").write_text("previous\n")

    def half_way(documents: object, staging: Path) -> dict[str, str]:
        (staging / "manifests.yaml").write_text("half\n")
        raise ManifestError("manifests do not validate")

    monkeypatch.setattr(artifacts, "write_manifests", half_way)
    target, plan_, _ = analyse(stack_spec("prod"))
    with pytest.raises(ManifestError):
        artifacts.write_artifacts(plan_, {p.name: proxy_config(target, p) for p in plan_.proxies}, [], out)
    assert {p.name: p.read_text() for p in out.iterdir()} == {"nginx.conf": "previous\n", "manifests.yaml": "previous\n"}
    assert sorted(p.name for p in out.parent.iterdir()) == ["prod"]
