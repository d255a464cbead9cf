"""components/spec/redos.py: the ReDoS analyzer's agent is per process, so a forked child (multiprocessing, mutmut's
workers) never reads answers meant for its parent."""

from __future__ import annotations

import multiprocessing
import os
import re
from typing import Any

import pytest

from components.spec import redos
from components.spec import regex as nginx_regex


def _child(queue: Any) -> None:
    agent = redos._agent()
    verdicts = [redos.check.__wrapped__(p).status for p in ("^/(a+)+$", "^/v[0-9]+/orders")]
    queue.put((os.getpid(), agent.owner if agent else None, verdicts))


def test_a_forked_child_starts_its_own_agent_and_gets_its_own_answers() -> None:
    parent = redos._agent()
    assert parent is not None, "recheck is installed by make venv"
    assert redos.check.__wrapped__("^/(a|a)*$").status == "vulnerable"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    children = [context.Process(target=_child, args=(queue,)) for _ in range(2)]
    for child in children:
        child.start()
    answers = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert all(pid == owner and owner != parent.owner for pid, owner, _ in answers)
    assert [verdicts for _, _, verdicts in answers] == [["vulnerable", "safe"]] * 2
    assert redos._agent() is parent and redos.check.__wrapped__("^/x+$").status == "safe"


# PCRE patterns (as nginx compiles them) and subjects: each translation must match exactly where PCRE2 does, in
# JavaScript's own engine (node), the dialect recheck analyzes, or (inline options, which the translation applies to
# the whole pattern: ambiguity can only grow) at least there. Hand-picked to reach every rewrite in redos.py.
_SAME_MATCHES = [
    (r"^/v[0-9]+/orders", ["/v1/orders", "/v/orders", "/v12/ordersX"]),
    (r"\A/api/\d+\z", ["/api/1", "/api/x", "x/api/1", "/api/1\n"]),
    (r"\A/api\Z", ["/api", "/apix"]),
    (r"\G/x", ["/x", "a/x"]),
    (r"(?i)^/orders", ["/orders", "/ORDERS", "/x"]),
    (r"^/(?s:a.b)$", ["/a\nb", "/ab"]),
    (r"^/(?m)x$", ["/x", "/y"]),
    (r"^/(?-i:a)b", ["/ab", "/Ab"]),
    (r"^/(?i:ab)c", ["/ABc", "/abC"]),
    (r"^/(?<v>v\d)/\k<v>$", ["/v1/v1", "/v1/v2"]),
    (r"^/(?P<id>\d+)/(?P=id)$", ["/12/12", "/12/13"]),
    (r"^/(?'n'a+)\g{n}$", ["/aa", "/aaa", "/ab"]),
    (r"^/(a)\g1$", ["/aa", "/ab"]),
    (r"^/(a)\g{1}$", ["/aa", "/ab"]),
    (r"^/a(?#a comment)b$", ["/ab", "/a(?#a comment)b"]),
    (r"^/\Qa.b\E$", ["/a.b", "/axb"]),
    (r"^/\Qa.b$", ["/a.b$", "/a.b"]),
    (r"^/\x{41}\o{102}$", ["/AB", "/ab"]),
    (r"^/a\hb\Hc$", ["/a bxc", "/axbxc", "/a b c"]),
    (r"^/a\Nb$", ["/axb", "/a\nb"]),
    (r"^/a\vb\Vc$", ["/a\nbxc", "/axbxc"]),
    (r"^/a\Rb$", ["/a\r\nb", "/a\nb", "/axb"]),
    (r"^/[\h]x[\v]$", ["/ x\n", "/xx\n"]),
    (r"^/\e\a$", ["/\x1b\x07", "/ea"]),
    (r"^/x\Ky$", ["/xy", "/y"]),
    (r"^/[[:digit:]]+[[:alpha:]]$", ["/12a", "/a", "/12"]),
    (r"^/[[:alnum:][:punct:]]+$", ["/a-b.c", "/a b"]),
    (r"^/[[:space:][:blank:]]x[[:xdigit:]]$", ["/ xF", "/ xg"]),
    (r"^/[[:upper:]][[:lower:]][[:word:]]$", ["/Ab_", "/aB_"]),
    (r"^/[[:cntrl:]][[:print:]][[:graph:]][[:ascii:]]$", ["/\x01 !a", "/a !a"]),
    (r"^/[]a]$", ["/]", "/a", "/b"]),
    (r"^/[^]a]$", ["/]", "/b"]),
    (r"^/(?|(a)|(b))$", ["/a", "/b", "/c"]),
    (r"^/a++b$", ["/aab", "/aa", "/b"]),
    (r"^/a*+b?+c{1,2}+$", ["/aabc", "/cc", "/ccc"]),
    (r"^/(?:x|y)\.json$", ["/x.json", "/y.json", "/xjson"]),
]


def _node_matches(cases: list[tuple[str, str, list[str]]]) -> list[list[bool]]:
    import json
    import shutil
    import subprocess

    node = shutil.which("node") or shutil.which("nodejs")
    assert node, "node comes with npm, which make venv needs for the analyzer"
    script = ("const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "console.log(JSON.stringify(cases.map(([s, f, subjects]) => { const r = new RegExp(s, f + 'u');"
              " return subjects.map(x => r.test(x)); })));")
    done = subprocess.run([node, "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True, timeout=60)
    result: list[list[bool]] = json.loads(done.stdout)
    return result


def test_translations_match_where_pcre2_matches() -> None:
    translated = [(redos.javascript_source(pattern), subjects) for pattern, subjects in _SAME_MATCHES]
    javascript = _node_matches([(source, flags, subjects) for (source, flags, _), subjects in translated])
    for (pattern, subjects), matches in zip(_SAME_MATCHES, javascript, strict=True):
        expected = [nginx_regex.search(pattern, s) for s in subjects]  # PCRE2 as nginx compiles and matches
        if redos.javascript_source(pattern)[1]:  # an inline option applies to the whole translation: a superset
            assert all(m for m, e in zip(matches, expected, strict=True) if e), (pattern, redos.javascript_source(pattern), subjects)
        else:
            assert matches == expected, (pattern, redos.javascript_source(pattern), subjects)
        assert any(expected) and not all(expected), f"{pattern}: its subjects should tell a wrong translation"
    relaxed = {pattern for (_, _, was_relaxed), (pattern, _) in zip((t for t, _ in translated), _SAME_MATCHES, strict=True) if was_relaxed}
    assert relaxed == {r"^/a++b$", r"^/a*+b?+c{1,2}+$"}


def test_atomic_groups_are_read_as_plain_groups_and_said_so() -> None:
    assert redos.javascript_source(r"^/(?>a|ab)c$") == ("^/(?:a|ab)c$", "", True)


@pytest.mark.parametrize(("pattern", "construct"), [
    (r"^/(a(?R)?b)", "recursion"), (r"^/(?(1)a|b)", "conditional"), (r"^/(*FAIL)", "verb"), (r"^/(?1)", "recursion"),
    (r"^/(?&n)", "recursion"), (r"^/(?P>n)", "recursion"), (r"^/(?C1)", "recursion"), (r"^/(?-1)", "recursion"),
    (r"^/\p{L}", r"\p"), (r"^/\X", r"\X"), (r"^/\C", r"\C"), (r"^/(a)\g{-1}", "relative back-reference"),
    (r"^/[[:^alpha:]]", "POSIX class"), (r"^/[[:foo:]]", "POSIX class"), (r"^/(?x)a b", "inline option"), (r"^/\ga", r"\g"),
])
def test_constructs_without_a_javascript_form_are_named(pattern: str, construct: str) -> None:
    with pytest.raises(redos.UnsupportedSyntaxError, match=re.escape(construct.split()[0])):
        redos.javascript_source(pattern)
    verdict = redos.check.__wrapped__(pattern)
    assert verdict.status == "unknown" and "which the analyzer cannot read" in verdict.reason
