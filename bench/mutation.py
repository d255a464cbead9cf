"""Mutation testing of components/ and policies/ with mutmut (pinned in requirements-dev.txt): do the tests notice
when the code is broken on purpose? Not part of `make test`: `make mutation` (or this script) runs it.

    .venv/bin/python bench/mutation.py [--max-children 2] [--sample N] [--report-only]

mutmut copies the packages into `mutants/`, runs the test selection once with every function traced to map each
function to the tests that execute it, then runs each mutant against only those tests (`-x`, fastest first), so a
mutant costs seconds, not the whole suite. What is mutated and which tests are selected is `[tool.mutmut]` in
pyproject.toml: the Pulumi edge (components/resources, the provider calls of components/targets/docker.py and
kubernetes.py), the renderer's text (checked by nginx, crossplane and the goldens) and the pack's plumbing are left
out; the selection is the in-process test files (the pack's gates run in a pack process the tracing does not see:
their mutants count as "no tests", reported apart). On this 2-core machine it runs under `nice` with 2 workers.

`--sample N` runs every N-th mutant of each function (`__mutmut_1`, `_1+N`, ...): a survivor rate in a fraction
of the time; the first call generates the mutants and the test map without running any mutant.

The summary counts mutants per package and per module: killed, survived, no tests, timeout and other (suspicious,
segfault, skipped), and the survivor rate = survived / (killed + survived + timeout); "text" counts the survivors
whose only change is the text of a string literal (a message's wording: `"XXname of the keyXX"`), and the last
column is the survivor rate without them. `mutmut results` lists the
survivors by name, `mutmut show <name>` the change.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).parent / "mutmut"
_LINE = re.compile(r"^\s+(\S+): (.+)$")
PACKAGES = ("components", "policies")


def run(max_children: int, names: list[str] | None = None) -> None:
    subprocess.run(["nice", "-n", "10", str(MUTMUT), "run", "--max-children", str(max_children), *(names or [])], cwd=ROOT,
                   check=False, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def generated() -> list[str]:
    """Every mutant mutmut generated (from its per-file metadata under mutants/)."""
    names: list[str] = []
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        names += json.loads(meta.read_text()).get("exit_code_by_key", {})
    return names


def sample(every: int, max_children: int) -> None:
    if not generated():  # generate the mutants and the test map; the pattern names no mutant
        run(max_children, ["netopt.generate-only.*"])
    chosen = [name for name in generated() if (int(name.rsplit("__mutmut_", 1)[1]) - 1) % every == 0]
    run(max_children, chosen)


def results() -> dict[str, str]:
    """mutant name -> status, for every mutant mutmut has a result for (not yet run: left out)."""
    listing = subprocess.run([str(MUTMUT), "results", "--all", "true"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return {m.group(1): m.group(2).strip() for line in listing.splitlines()
            if (m := _LINE.match(line)) and m.group(2).strip() != "not checked"}


def module_of(mutant: str) -> str:
    """`components.plan.queueing.x_erlang_b__mutmut_3` -> `components.plan.queueing` (methods: `.xǁClassǁname__mutmut_n`)."""
    head = mutant.split("__mutmut_")[0]
    parts = head.split(".")
    return ".".join(parts[:-1])


class _NoText(ast.NodeTransformer):
    def visit_Constant(self, node: ast.Constant) -> ast.Constant:
        return ast.Constant("") if isinstance(node.value, str) else node


def text_only(survivors: list[str]) -> set[str]:
    """The survivors whose function differs from the original only in string literals (mutmut keeps both, as
    `x_<name>__mutmut_<n>` and `x_<name>__mutmut_orig`, in the module's copy under mutants/)."""
    found: set[str] = set()
    by_module: dict[str, list[str]] = defaultdict(list)
    for mutant in survivors:
        by_module[module_of(mutant)].append(mutant.rsplit(".", 1)[1])
    for module, names in by_module.items():
        source = ROOT / "mutants" / (module.replace(".", "/") + ".py")
        wanted = set(names) | {name.rpartition("__mutmut_")[0] + "__mutmut_orig" for name in names}
        functions = {n.name: n for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef) and n.name in wanted}
        for name in names:
            original = functions.get(name.rpartition("__mutmut_")[0] + "__mutmut_orig")
            if name in functions and original is not None and _without_text(functions[name]) == _without_text(original):
                found.add(f"{module}.{name}")
    return found


def _without_text(function: ast.FunctionDef) -> str:
    bare = copy.deepcopy(function)
    bare.name = ""
    return ast.dump(_NoText().visit(bare))


def summary(statuses: dict[str, str]) -> list[str]:
    text = text_only([m for m, status in statuses.items() if status == "survived"])
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for mutant, status in statuses.items():
        by_module[module_of(mutant)][status] += 1
        if status == "survived" and mutant in text:
            by_module[module_of(mutant)]["text"] += 1
    lines = [f"{'':44}{'total':>7}{'killed':>8}{'survived':>9}{'text':>6}{'no tests':>9}{'timeout':>8}{'other':>6}{'survivors':>11}"
             f"{'w/o text':>10}"]

    def row(name: str, counts: Counter[str]) -> str:
        known = ("killed", "survived", "no tests", "timeout", "text")
        other = sum(v for k, v in counts.items() if k not in known)
        judged = counts["killed"] + counts["survived"] + counts["timeout"]
        rate = f"{100 * counts['survived'] / judged:.1f} %" if judged else "-"
        plain = judged - counts["text"]
        rate_plain = f"{100 * (counts['survived'] - counts['text']) / plain:.1f} %" if plain else "-"
        total = sum(v for k, v in counts.items() if k != "text")
        return (f"{name:44}{total:>7}{counts['killed']:>8}{counts['survived']:>9}{counts['text']:>6}{counts['no tests']:>9}"
                f"{counts['timeout']:>8}{other:>6}{rate:>11}{rate_plain:>10}")

    for package in PACKAGES:
        modules = sorted(m for m in by_module if m.split(".")[0] == package)
        total: Counter[str] = Counter()
        for module in modules:
            total.update(by_module[module])
        lines.append(row(f"{package}/", total))
        lines += [row("  " + module.removeprefix(package + "."), by_module[module]) for module in modules]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--sample", type=int, default=1, help="run every N-th mutant of each function")
    parser.add_argument("--report-only", action="store_true", help="summarize the results of an earlier run")
    args = parser.parse_args(argv)
    if not args.report_only:
        if args.sample > 1:
            sample(args.sample, args.max_children)
        else:
            run(args.max_children)
    statuses = results()
    if not statuses:
        print("no mutation results (run without --report-only first)", file=sys.stderr)
        return 1
    print("\n".join(summary(statuses)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
