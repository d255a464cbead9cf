"""The hostile corpus of issue 20 through the real entry point, each run bounded in CPU time and memory.

`python -m offline.plan --stack <s>` runs in a subprocess under `resource.setrlimit`: 5 s of CPU (RLIMIT_CPU, so a
busy machine does not make it flaky) and 512 MiB of address space (RLIMIT_AS; the process itself stays under
200 MB of resident memory: `ru_maxrss` is asserted). A hang is killed by the kernel and fails the test; a
swelling process gets MemoryError. Each case must end in exit 1 with one report that names the key (or the
line holding it), no traceback, no raw control character, and nothing written under build/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from components.resources.pulumi_config import namespace_values
from components.spec.validation import SpecError
from offline.stack_config import PROJECT_DIR
from testbed.fuzzcheck import ProjectCopy

DEV = (PROJECT_DIR / "stacks" / "Pulumi.dev.yaml").read_text()
CPU_SECONDS = 5
ADDRESS_SPACE = 512 * 1024 * 1024
RESIDENT_LIMIT_KB = 200 * 1024


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A scratch copy of the project (the fuzz suite's): the plans write its stacks/ and build/, never the worktree's."""
    copy = ProjectCopy()
    yield copy.root
    copy.remove()


_BOUNDED_RUN = f"""
import resource, subprocess, sys
def limits():
    resource.setrlimit(resource.RLIMIT_CPU, ({CPU_SECONDS}, {CPU_SECONDS}))
    resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE}))
code = subprocess.run(sys.argv[2:], preexec_fn=limits).returncode
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code if code >= 0 else 128 - code)
"""
"""Runs the plan as its only child under the limits and writes that child's peak resident KB: the test process's own
RUSAGE_CHILDREN would be the largest of every child the whole test session started."""


def bounded_plan(project: Path, text: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run the plan on `text` as stack `h` under the limits; (result, peak resident KB of the plan)."""
    (project / "stacks" / "Pulumi.h.yaml").write_text(text)  # Pulumi.yaml: stackConfigDir stacks
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project), "LANG": "C.UTF-8"}
    peak = project / "peak-rss-kb"
    result = subprocess.run([sys.executable, "-c", _BOUNDED_RUN, str(peak), sys.executable, "-m", "offline.plan", "--stack", "h",
                             "--no-policy"], cwd=project, env=env, capture_output=True, text=True, errors="backslashreplace",
                            timeout=120, check=False)
    return result, int(peak.read_text())


def replace(old: str, new: str) -> str:
    assert old in DEV, old
    return DEV.replace(old, new, 1)


def alias_bomb() -> str:
    lines = ["  netopt:bomb0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  netopt:bomb{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return DEV + "\n".join(lines) + "\n"


def workload_line(extra: str) -> str:
    return replace("      max_concurrency: 64\n", f"      max_concurrency: 64\n{extra}")


# case -> (stack text, texts the report must hold)
CASES: dict[str, tuple[Callable[[], str], tuple[str, ...]]] = {
    "alias_bomb": (alias_bomb, ("netopt:bomb5 holds more than 100,000 values once its YAML aliases are expanded",)),
    "alias_bomb_in_a_value": (lambda: workload_line("      args: [&b0 [a, a, a, a, a, a, a, a], " + ", ".join(
        f"&b{i} [{', '.join([f'*b{i - 1}'] * 8)}]" for i in range(1, 8)) + "]\n"),
        ("netopt:workloads[0].args[5] holds more than 100,000 values once its YAML aliases are expanded",)),
    "deep_list": (lambda: replace("  netopt:target: docker\n", "  netopt:target: " + "[" * 5000 + "]" * 5000 + "\n"),
                  ("the value at netopt:target[0][0]... nests deeper than 64 levels",)),
    "deep_mapping": (lambda: replace("  netopt:target: docker\n", "  netopt:target: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
                     ("the value at netopt:target.a.a... nests deeper than 64 levels",)),
    "file_of_50_mb": (lambda: workload_line("      env: {BIG: " + "x" * 50_000_000 + "}\n"),
                      ("more than the 4,194,304 (4 MiB) a stack file may hold (its line 28 alone is 50,000,018 bytes)", "env: {BIG: xxx")),
    "env_value_of_1_mb": (lambda: workload_line("      env: {BIG: " + "x" * 1_000_000 + "}\n"),
                          ("netopt:workloads[0].env.BIG: is 1,000,000 bytes; one argument or environment entry must stay under 131,072",)),
    "list_of_150k": (lambda: workload_line("      args: [" + ",".join(["a"] * 150_000) + "]\n"),
                     ("the file holds more than 100,000 values (the 100,001th is at netopt:workloads[0].args...)",)),
    "args_past_argv": (lambda: workload_line("      args: [" + ",".join(["a"] * 5000) + "]\n"),
                       ("netopt:workloads[0].args: needs at most 4096 items, got 5000",)),
    "int_of_100k_digits": (lambda: replace("      max_concurrency: 64\n", "      max_concurrency: " + "9" * 100_000 + "\n"),
                           ("netopt:workloads[0].max_concurrency: a number of 100,000 digits",)),
    "hex_int_of_20k_digits": (lambda: replace("      max_concurrency: 64\n", "      max_concurrency: 0x" + "f" * 20_000 + "\n"),
                              ("netopt:workloads[0].max_concurrency: a number of 20,002 digits",)),
    "nul_in_env": (lambda: workload_line('      env: {A: "x\\0y"}\n'),
                   ("netopt:workloads[0].env.A: contains a NUL character (\\x00) at position 1",)),
    "escape_in_args": (lambda: workload_line('      args: ["\\e[2J"]\n'),
                       ("netopt:workloads[0].args[0]: contains the control character \\x1b at position 0",)),
    "control_characters_in_a_key": (lambda: workload_line('      "po\\ert\\0": 1\n'), ("netopt:workloads[0].po\\x1brt\\x00: unknown key",)),
    "raw_escape_in_the_file": (lambda: replace("  netopt:environment: dev\n", "  netopt:environment: d\x1b[2Jev\n"),
                               ("unacceptable character #x001b", "netopt:environment: d\\x1b[2Jev")),
    "bidi_override": (lambda: replace("  netopt:environment: dev\n", '  netopt:environment: "d\\u202Eev"\n'),
                      ("netopt:environment: 'd\\u202eev' does not match",)),
    "image_of_a_megabyte": (lambda: replace("      image: ghcr.io/acme/shop-web:2.4.1\n", "      image: " + "i" * 1_000_000 + "\n"),
                            ("netopt:workloads[0].image:",)),
    "exponential_regex": (lambda: replace("'^/v[0-9]+/orders'", "'^/(a+)+$'"),
                          ("netopt:routes[5].match: path '^/(a+)+$' matching can backtrack catastrophically", "exponential")),
    "polynomial_regex": (lambda: replace("'^/v[0-9]+/orders'", "'^/[a-z]+[a-z0-9]*\\d$'"),
                         ("netopt:routes[5].match:", "2nd degree polynomial")),
    "possessive_read_as_plain": (lambda: replace("'^/v[0-9]+/orders'", "'^/(a++)+$'"),
                                 ("reading its possessive quantifiers and atomic groups as plain ones",)),
    "recursive_regex": (lambda: replace("'^/v[0-9]+/orders'", "'^/(a(?R)?b)'"), ("cannot be checked for catastrophic backtracking",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_input_is_one_bounded_report(project: Path, case: str) -> None:
    text, expected = CASES[case]
    result, resident_kb = bounded_plan(project, text())
    assert result.returncode == 1, f"exit {result.returncode} (128 + 9 or 24: killed by a limit)\n{result.stderr[-2000:]}"
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr, result.stderr[-3000:]
    assert not any(c in result.stderr for c in "\x00\x1b\u202e"), "a raw control character reached the report"
    assert len(result.stderr) < 5000, f"a report of {len(result.stderr):,} characters"
    assert result.stdout == ""
    for piece in expected:
        assert piece in result.stderr, f"{piece!r} not in:\n{result.stderr}"
    assert resident_kb < RESIDENT_LIMIT_KB, f"{resident_kb // 1024} MB resident"
    assert not (project / "build" / "h").exists()


@pytest.mark.parametrize("concurrency", [1_000_000_000, 999_999_999])
def test_extreme_but_valid_numbers_plan_within_the_bounds(project: Path, concurrency: int) -> None:
    """max_concurrency 10⁹ (Erlang B was O(c): it hung) and a peak of 10⁹ rps plan cleanly under the same limits."""
    text = replace("      max_concurrency: 64\n", f"      max_concurrency: {concurrency}\n").replace(
        "    web: {peak_rps: 50, clients: 4}\n", "    web: {peak_rps: 1000000000, clients: 1000000000}\n")
    result, resident_kb = bounded_plan(project, text)
    assert result.returncode == 0, result.stderr[-3000:]
    assert resident_kb < RESIDENT_LIMIT_KB
    assert (project / "build" / "h" / "nginx.conf").is_file()
    shutil.rmtree(project / "build" / "h")


def test_the_program_path_refuses_deep_json_too() -> None:
    """Under the Pulumi CLI the program reads each value as JSON text: 100,000 levels are a report, not a RecursionError."""
    with pytest.raises(SpecError) as err:
        namespace_values({"netopt:target": "[" * 100_000 + "]" * 100_000})
    assert "netopt:target: nests too deeply to read" in str(err.value)
