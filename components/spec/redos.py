"""Route regexes that backtrack catastrophically are refused, on the word of recheck, a ReDoS analyzer we did not write.

nginx matches `location ~` regexes with a backtracking PCRE2 matcher: `^/(a+)+$` against `/aaaa…a/` (33 bytes)
costs a worker 0.16 s of CPU and ends in a 500 (`pcre2_match() failed: -47`, the match limit), before any rate
limit counts the request. PCRE2 compiling a pattern (components/spec/regex.py) says nothing about that.

recheck (npm `recheck`, pinned in tools/recheck/, installed by `make venv`) decides it from the pattern: an
automaton-theoretic check of the backtracking matcher (exponential or polynomial ambiguity), with a fuzzer for
what automata cannot model, and it answers with the complexity and an attack string. It reads the JavaScript
dialect, so `javascript_source` rewrites PCRE-only syntax first: `\\A` `\\z` `\\Z` `\\G` anchors, `(?P<n>…)`,
`\\Q…\\E`, POSIX classes, `\\h` `\\v` `\\R` `\\N` `\\e` `\\x{…}`, comments and inline flags (`(?i)` anywhere makes the
whole pattern case-insensitive: ambiguity can only grow). Possessive quantifiers and atomic groups, which it
cannot read, become plain ones: backtracking can only grow, so a "safe" answer still holds, and a refusal says
it read them so. What it cannot read at all (recursion, conditionals, verbs, `(?x)`) is refused: an unchecked
pattern is not trusted. Its linux-x64 native build runs (no node at run time); elsewhere its jar runs on Java.
One `recheck agent` process answers every check of a run, about 5 ms each, and answers are cached per pattern.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

RECHECK_VERSION = "4.5.0"
TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "recheck"
CHECK_TIMEOUT_MS = 3000
"""recheck's own time budget for one pattern; past it the answer is `unknown`, and the pattern is refused."""

_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z", "space": "\\t\\n\\x0b\\f\\r ",
    "blank": "\\t ", "xdigit": "0-9A-Fa-f", "word": "\\w", "punct": "!-\\/:-@\\[-`{-~", "cntrl": "\\x00-\\x1f\\x7f",
    "print": " -~", "graph": "!-~", "ascii": "\\x00-\\x7f",
}


class UnsupportedSyntaxError(ValueError):
    """A construct recheck cannot read and that has no equivalent it can."""


@dataclass(frozen=True)
class Verdict:
    """recheck's answer: `safe`, `vulnerable` (with `complexity` and an `attack` string) or `unknown` (`reason`)."""

    status: str
    complexity: str = ""
    attack: str = ""
    reason: str = ""
    relaxed: bool = False


def javascript_source(pattern: str) -> tuple[str, str, bool]:
    """(source, flags, relaxed): the pattern in the JavaScript dialect recheck reads; `relaxed` when possessive
    quantifiers or atomic groups were read as plain ones. Raises UnsupportedSyntaxError for what has no JavaScript form."""
    out: list[str] = []
    flags: set[str] = set()
    relaxed = False
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            text, i = _escape(pattern, i, in_class)
            out.append(text)
            continue
        if in_class:
            posix = re.match(r"\[:(\^?)([a-z]+):\]", pattern[i:])
            if posix:
                if posix.group(1) or posix.group(2) not in _POSIX_CLASSES:
                    raise UnsupportedSyntaxError(f"the POSIX class {posix.group(0)}")
                out.append(_POSIX_CLASSES[posix.group(2)])
                i += posix.end()
                continue
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            start = re.match(r"\[\^?\]?", pattern[i:])
            assert start is not None
            out.append(start.group(0).replace("]", "\\]"))  # PCRE: a leading ] is literal; JavaScript: [] is empty
            in_class, i = True, i + start.end()
            continue
        if ch == "(":
            text, i, more_flags, atomic = _group(pattern, i)
            out.append(text)
            flags |= more_flags
            relaxed |= atomic
            continue
        if ch in "*+?}" and pattern[i + 1 : i + 2] == "+" and (ch != "}" or re.search(r"\{\d+(,\d*)?$", pattern[:i])):
            out.append(ch)  # possessive: read as the plain quantifier
            relaxed, i = True, i + 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), "".join(sorted(flags)), relaxed


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """One backslash sequence at `i` in JavaScript, and where the next token starts."""
    nxt = pattern[i + 1]
    if nxt == "Q":
        end = pattern.find("\\E", i + 2)
        end = len(pattern) if end < 0 else end
        return "".join("\\" + c if not c.isalnum() else c for c in pattern[i + 2 : end]), end + 2
    simple = {"E": "", "e": "\\x1b", "a": "\\x07", "K": ""}
    if not in_class:
        simple |= {"A": "^", "G": "^", "z": "$", "Z": "$", "h": "[\\t \\xa0]", "H": "[^\\t \\xa0]", "N": "[^\\n]",
                   "v": "[\\n\\x0b\\f\\r\\x85]", "V": "[^\\n\\x0b\\f\\r\\x85]", "R": "(?:\\r\\n|[\\n\\x0b\\f\\r\\x85])"}
    else:
        simple |= {"h": "\\t \\xa0", "v": "\\n\\x0b\\f\\r\\x85"}
    if nxt in simple:
        return simple[nxt], i + 2
    braced = re.match(r"\\([xo])\{([0-9A-Fa-f]+)\}", pattern[i:])
    if braced:
        code = int(braced.group(2), 16 if braced.group(1) == "x" else 8)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}", i + braced.end()
    reference = re.match(r"\\(?:g\{?(-?\d+)\}?|[gk][{'<]([A-Za-z_]\w*)[}'>])", pattern[i:])
    if reference:
        number, name = reference.groups()
        if number is not None and number.startswith("-"):
            raise UnsupportedSyntaxError("a relative back-reference")
        return (f"\\{number}" if number is not None else f"\\k<{name}>"), i + reference.end()
    if nxt in "pPXC" or (nxt == "g" and not in_class):
        raise UnsupportedSyntaxError(f"the escape \\{nxt}")
    return pattern[i : i + 2], i + 2


def _group(pattern: str, i: int) -> tuple[str, int, set[str], bool]:
    """The group opening at `i` in JavaScript: (text, next index, flags it turns on, whether it was atomic)."""
    rest = pattern[i:]
    if rest.startswith(("(*", "(?(", "(?R", "(?&", "(?P>", "(?C")) or re.match(r"\(\?[+-]?\d", rest):
        raise UnsupportedSyntaxError("recursion, a conditional or a verb")
    if rest.startswith("(?#"):
        end = pattern.find(")", i)
        return "", (len(pattern) if end < 0 else end + 1), set(), False
    if rest.startswith(("(?P<", "(?'")):
        name = re.match(r"\(\?P?[<'](\w+)[>']", rest)
        if name:
            return f"(?<{name.group(1)}>", i + name.end(), set(), False
    if rest.startswith("(?P="):
        name = re.match(r"\(\?P=(\w+)\)", rest)
        if name:
            return f"\\k<{name.group(1)}>", i + name.end(), set(), False
    if rest.startswith("(?>"):
        return "(?:", i + 3, set(), True
    if rest.startswith("(?|"):
        return "(?:", i + 3, set(), False
    inline = re.match(r"\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])", rest)
    if inline and (inline.group(1) or inline.group(2) is not None):
        on, off = inline.group(1), inline.group(2) or ""
        if set(on + off) - set("imsnJU"):
            raise UnsupportedSyntaxError(f"the inline option {inline.group(0)}")
        flags = {flag for flag in on if flag in "ims"}
        return ("(?:" if inline.group(3) == ":" else ""), i + inline.end(), flags, False
    return "(", i + 1, set(), False


class _Agent:
    """One `recheck agent` process (JSON-RPC over stdin/stdout), started on the first check, ended at exit."""

    def __init__(self, command: list[str]) -> None:
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                         text=True, bufsize=1)
        self.owner = os.getpid()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        atexit.register(self.close)

    def check(self, source: str, flags: str) -> dict[str, Any]:
        with self._lock:
            request_id = next(self._ids)
            request = {"jsonrpc": "2.0+push", "id": request_id, "method": "check",
                       "params": {"source": source, "flags": flags, "params": {"timeout": CHECK_TIMEOUT_MS}}}
            stdin, stdout = self._pipes()
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            while True:
                line = stdout.readline()
                if not line:
                    raise RuntimeError("recheck stopped answering")
                answer = json.loads(line)
                if answer.get("id") == request_id and "result" in answer:
                    return dict(answer["result"])

    def _pipes(self) -> tuple[IO[str], IO[str]]:
        assert self._process.stdin is not None and self._process.stdout is not None
        return self._process.stdin, self._process.stdout

    def close(self) -> None:
        if os.getpid() != self.owner:  # a forked child's copy: the agent is its parent's to end
            return
        if self._process.poll() is None:
            self._pipes()[0].close()  # recheck cancels what is in flight and exits
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._pipes()[1].close()


def analyzer_command() -> list[str] | None:
    """How to start recheck's agent: $NETOPT_RECHECK, else the native build `make venv` installed, else its jar."""
    override = os.environ.get("NETOPT_RECHECK")
    if override:
        return [override, "agent"]
    native = TOOL_DIR / "node_modules" / "recheck-linux-x64" / "recheck"
    if native.is_file() and os.access(native, os.X_OK):
        return [str(native), "agent"]
    jar, java = TOOL_DIR / "node_modules" / "recheck-jar" / "recheck.jar", shutil.which("java")
    return [java, "-jar", str(jar), "agent"] if jar.is_file() and java else None


_AGENTS: dict[int, _Agent | None] = {}


def _agent() -> _Agent | None:
    """This process's agent. One per process: a child forked after its parent started one (multiprocessing, mutmut's
    workers) would share the parent's pipes, and the two would read each other's answers."""
    pid = os.getpid()
    if pid not in _AGENTS:
        command = analyzer_command()
        _AGENTS[pid] = _Agent(command) if command else None
    return _AGENTS[pid]


@lru_cache(maxsize=4096)
def check(pattern: str) -> Verdict:
    """recheck's verdict on a PCRE2 pattern (one nginx already compiles)."""
    try:
        source, flags, relaxed = javascript_source(pattern)
    except UnsupportedSyntaxError as unsupported:
        return Verdict("unknown", reason=f"it uses {unsupported}, which the analyzer cannot read")
    agent = _agent()
    if agent is None:
        return Verdict("unknown", reason=f"the ReDoS analyzer (recheck {RECHECK_VERSION}) is not installed: run `make venv` "
                                         "(it needs npm: sudo apt-get install -y npm)")
    result = agent.check(source, flags)
    status = str(result.get("status"))
    if status == "vulnerable":
        complexity = result.get("complexity", {}).get("summary", "super-linear")
        return Verdict(status, complexity=str(complexity), attack=str(result.get("attack", {}).get("pattern", "")), relaxed=relaxed)
    if status == "safe":
        return Verdict(status, relaxed=relaxed)
    error = result.get("error", {})
    reason = {"timeout": "the analysis ran out of time", "invalid": f"it could not read it ({error.get('message', '')})"}.get(
        str(error.get("kind")), str(error.get("kind") or "no answer"))
    return Verdict("unknown", reason=reason, relaxed=relaxed)


def catastrophic_backtracking(pattern: str) -> str | None:
    """Why nginx must not get this pattern (None when recheck finds its matching time linear)."""
    verdict = check(pattern)
    read = " (reading its possessive quantifiers and atomic groups as plain ones)" if verdict.relaxed else ""
    if verdict.status == "vulnerable":
        return (f"matching can backtrack catastrophically: the ReDoS analyzer recheck finds {verdict.complexity} time{read}, "
                f"e.g. for the path {verdict.attack}, where one request would cost nginx's worker up to 0.2 s of CPU; "
                "rewrite it so that no two repetitions can match the same text (e.g. (a+)+ as a+, [a-z]+[a-z0-9]* as [a-z][a-z0-9]*)")
    if verdict.status == "unknown":
        return (f"cannot be checked for catastrophic backtracking: {verdict.reason}{read}; write it with the syntax PCRE "
                "and JavaScript share")
    return None
