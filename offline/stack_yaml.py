"""Read a stack file's YAML strictly: a problem names file:line:column and shows the line, never a traceback.

PyYAML alone reports errors against `"<unicode string>"`, lets a repeated key silently replace the first one,
and turns `2024-01-01` into a `date` that no config value can hold. Here the document is composed first (every
node keeps its position), checked as a whole — duplicate keys, keys that are not text, dates, recursive aliases —
and only then built into Python values, so every such problem of the file is reported at once.

A hostile or careless file cannot make the read hang or swell (each check below is linear in the file):
- at most `MAX_FILE_BYTES` (4 MiB) are read: PyYAML is pure Python (about 3 µs a byte of dense YAML), and the
  generated 2,000-workload benchmark stack is 0.85 MB; a larger file is refused naming its longest line;
- at most `MAX_VALUES` (100,000) values, counted while composing and again with every alias expanded (an alias
  bomb of nine levels of `[*a, *a, …]` is a few hundred bytes and 387 million values once `json.dumps` or the
  program expands it); the 2,000-workload stack holds 87,000;
- at most `MAX_DEPTH` (64) levels of nesting (the deepest real key is 6 levels down), instead of a
  RecursionError from the composer;
- integers of more digits than Python converts (4,300) are refused by the walk, not by a ValueError.
The walk that checks keys visits each node once, however many aliases point at it.
"""

from __future__ import annotations

import mmap
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, MappingStartEvent, NodeEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from components.spec.shown import printable

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_VALUES = 100_000
MAX_DEPTH = 64
SHOWN_LINE = 120
"""Characters of a source line a problem shows (the caret's column is still the real one)."""

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"


class _StackLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading plain scalars as the Pulumi CLI's YAML 1.2 parser does.

    YAML 1.1 makes `yes`, `no`, `on` and `off` booleans, `1:30` the number 90 and `1e3` text; the CLI (and YAML
    1.2) reads the first ones as text and the last as a number, so the offline plan must too, or a value would
    validate here and be refused under `pulumi up` (or the other way round).
    """


_YAML_1_2_SCALARS = [
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_INT, r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$", "-+0123456789"),
    (_FLOAT, r"^(?:[-+]?(?:\.[0-9][0-9_]*|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     "-+0123456789."),
]
_StackLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_BOOL, _INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _pattern, _firsts in _YAML_1_2_SCALARS:  # in this order: an integer is tried before a float
    for _first in _firsts:
        _StackLoader.yaml_implicit_resolvers.setdefault(_first, []).append((_tag, re.compile(_pattern)))


class _LimitExceededError(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _prescan(text: str, name: str, lines: list[str]) -> None:
    """Raise _LimitExceededError at the first value past MAX_VALUES or MAX_DEPTH, naming its key path.

    It reads the parser's events only, with libyaml's C parser where PyYAML has it (about ten times the pure-Python
    parser's speed: 100,000 values in a fraction of a second), so a huge file is refused before the slow composer
    sees it; a syntax error is left to the strict loader, which reports it PyYAML's way.
    """
    loader = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    stack: list[list[Any]] = []  # per open collection: [is_mapping, current key or index, expecting a key]
    values = 0
    try:
        for event in yaml.parse(text, Loader=loader):
            if isinstance(event, CollectionEndEvent):
                stack.pop()
                _advance(stack, None)
                continue
            if not isinstance(event, NodeEvent):
                continue
            if not isinstance(event, AliasEvent):
                values += 1
                if values > MAX_VALUES:
                    _stop(event, name, lines, f"the file holds more than {MAX_VALUES:,} values (the {MAX_VALUES + 1:,}th is "
                          f"{_where(stack)}); a stack config holds at most that many (the 2,000-workload benchmark stack holds 87,000)")
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    _stop(event, name, lines, f"the value {_where(stack)} nests deeper than {MAX_DEPTH} levels; a stack config is a "
                          "few levels deep (the deepest key is 6 levels down)")
                stack.append([isinstance(event, MappingStartEvent), -1, True])
            else:
                _advance(stack, event.value if isinstance(event, ScalarEvent) else None)
    except yaml.YAMLError:
        return


def _advance(stack: list[list[Any]], scalar: str | None) -> None:
    """One node of the innermost open collection is complete: a mapping's key (`scalar`, its text) or value, a list item."""
    if not stack:
        return
    top = stack[-1]
    if not top[0]:
        top[1] += 1
    elif top[2]:
        top[1], top[2] = ("" if scalar is None else scalar), False
    else:
        top[2] = True


def _where(stack: list[list[Any]]) -> str:
    """The key path being read, its first levels only (a path 64 levels deep is not worth reading)."""
    steps: list[str | int] = []
    for is_mapping, step, expecting_key in stack:
        if is_mapping and not expecting_key and step != "":
            steps.append(step)
        elif not is_mapping:
            steps.append(step + 1)
    path = ""
    for step in steps[:4]:
        path = _child(path, step)
    return f"at {path}{'...' if len(steps) > 4 else ''}" if path else "in the document"


def _stop(event: yaml.Event, name: str, lines: list[str], message: str) -> None:
    line = event.start_mark.line + 1
    raise _LimitExceededError(Problem(name, line, event.start_mark.column + 1, message, _line(lines, line)))


@dataclass(frozen=True)
class Problem:
    """One problem in a YAML file: where (`file:line:column`, 1-based), what, and the offending line with a caret."""

    file: str
    line: int
    column: int
    message: str
    source_line: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.column}: {self.message}"
        if self.source_line:
            gutter = f"{self.line:>6} | "
            shown = printable(self.source_line[:SHOWN_LINE])
            if len(self.source_line) > SHOWN_LINE:
                shown += f"... ({len(self.source_line):,} characters)"
            text += f"\n{gutter}{shown}"
            if self.column <= SHOWN_LINE:
                text += f"\n{' ' * (len(gutter) - 2)}| {' ' * len(printable(self.source_line[: self.column - 1]))}^"
        return text


class StackFileError(Exception):
    """A stack file that cannot be read as a config: `report()` lists every problem, ready to show."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        count = len(self.problems)
        lines = [f"netopt: {count} problem{'s' if count != 1 else ''} in {_shown(self.path)} (nothing was deployed or rendered):"]
        for problem in self.problems:
            first, *rest = str(problem).split("\n")
            lines += [f"  - {printable(first)}", *(f"    {line}" for line in rest)]
        return "\n".join(lines)


@dataclass(frozen=True)
class Document:
    """A loaded YAML document: its Python `value`, and its nodes, to point at the place a later check objects to."""

    path: Path
    value: Any
    root: Node | None
    lines: list[str]

    def problem(self, keys: list[str], message: str) -> Problem:
        """A problem at the key `keys` names (a path of mapping keys), or at its nearest ancestor in the file."""
        node, at = self.root, self.root
        for key in keys:
            pair = next(((k, v) for k, v in node.value if k.value == key), None) if isinstance(node, MappingNode) else None
            if pair is None:
                break
            at, node = pair
        if at is None:
            return Problem(_shown(self.path), 1, 1, message)
        return _problem(at, _shown(self.path), self.lines, message)


def load(path: Path) -> Document:
    """The single YAML document in `path`; raise `StackFileError` naming every problem."""
    name = _shown(path)
    try:
        data = _read_bounded(path, name)
        text = data.decode("utf-8")
    except OSError as error:
        raise StackFileError(path, [Problem(name, 1, 1, f"cannot read the file: {error.strerror or error}")]) from None
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise StackFileError(path, [Problem(name, line, 1, f"not UTF-8 text (byte {error.start}); save the file as UTF-8")]) from None
    lines = text.splitlines()
    loader: _StackLoader | None = None
    try:
        _prescan(text, name, lines)
        loader = _StackLoader(text)
        node = loader.get_single_node()
        if node is None:
            return Document(path, None, None, lines)
        problems = list(_check(node, "", name, lines, ancestors=set(), visited=set()))
        problems += _expansion_problems(node, name, lines)
        if problems:
            raise StackFileError(path, problems)
        return Document(path, loader.construct_document(node), node, lines)  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
    except _LimitExceededError as limit:
        raise StackFileError(path, [limit.problem]) from None
    except yaml.MarkedYAMLError as error:
        raise StackFileError(path, [_parse_problem(error, name, lines)]) from None
    except yaml.YAMLError as error:  # a reader error (e.g. a control character) carries its own position
        position = getattr(error, "position", 0)
        line = text[:position].count("\n") + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        message = str(error).split("\n", 1)[0].strip()
        raise StackFileError(path, [Problem(name, line, column, message, _line(lines, line))]) from None
    finally:
        if loader is not None:
            loader.dispose()  # type: ignore[no-untyped-call]  # untyped in types-PyYAML


def _read_bounded(path: Path, name: str) -> bytes:
    """The file's bytes, or a StackFileError when it is over MAX_FILE_BYTES, pointing at its longest line (the file is
    mapped, not read: a 50 MB value costs no memory, and the search runs in C)."""
    with path.open("rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
        if len(data) <= MAX_FILE_BYTES:
            return data
        size = path.stat().st_size
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
            longest = max(re.finditer(rb"[^\n]{4096,}", view), key=lambda m: m.end() - m.start(), default=None)
            start, length = (longest.start(), longest.end() - longest.start()) if longest else (MAX_FILE_BYTES, 0)
            line = data.count(b"\n", 0, start) + 1 if start <= MAX_FILE_BYTES else data.count(b"\n") + view[MAX_FILE_BYTES:start].count(b"\n") + 1
            line_start = view.rfind(b"\n", 0, start) + 1
            excerpt = view[line_start : line_start + SHOWN_LINE].split(b"\n", 1)[0].decode("utf-8", "replace")
    where = f"its line {line} alone is {length:,} bytes" if longest else f"line {line} is past the limit"
    message = (f"the file is {size:,} bytes, more than the {MAX_FILE_BYTES:,} (4 MiB) a stack file may hold ({where}); "
               "keep large data (certificates, documents) out of the stack config")
    raise StackFileError(path, [Problem(name, line, 1, message, excerpt)])


def _shown(path: Path) -> str:
    """The path as the user would type it: relative to the working directory when the file is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _line(lines: list[str], number: int) -> str:
    return lines[number - 1] if 0 < number <= len(lines) else ""


def _parse_problem(error: yaml.MarkedYAMLError, name: str, lines: list[str]) -> Problem:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    if line > len(lines) and lines:  # at the end of the file: show its last line
        line, column = len(lines), len(lines[-1]) + 1
    message = error.problem or "invalid YAML"
    if error.context:
        context = error.context_mark
        where = f" at line {context.line + 1}, column {context.column + 1}" if context is not None and context.line + 1 != line else ""
        message += f" ({error.context}{where})"
    if "\t" in _line(lines, line) and "tab" not in message:
        message += "; YAML indents with spaces, not tabs"
    return Problem(name, line, column, message, _line(lines, line))


def _problem(node: Node, name: str, lines: list[str], message: str) -> Problem:
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    return Problem(name, line, column, message, _line(lines, line))


def _child(path: str, key: str | int) -> str:
    """The key path of a child, in the report's form: keys under `config:` are named as the program sees them."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path and path != "config" else key


def _check(node: Node, path: str, name: str, lines: list[str], ancestors: set[int], visited: set[int]) -> Iterator[Problem]:
    """Every problem under `node`: repeated keys, keys that are not plain text, dates, aliases that contain themselves,
    integers too long to convert. A node reached again through an alias is not walked again (its problems are
    reported once, at its first path), so the walk is linear however aliases multiply a block."""
    if id(node) in ancestors:
        yield _problem(node, name, lines, f"{path or 'the document'} refers to itself through an alias; YAML config cannot be recursive")
        return
    if id(node) in visited:
        return
    visited.add(id(node))
    ancestors = ancestors | {id(node)}
    if isinstance(node, ScalarNode) and node.tag == _TIMESTAMP:
        yield _problem(node, name, lines, f"{path}: {node.value} is a YAML date, not text; quote it ('{node.value}') if you mean the text")
    elif isinstance(node, ScalarNode) and node.tag == _INT and len(node.value) > sys.get_int_max_str_digits() > 0:
        yield _problem(node, name, lines, f"{path}: a number of {len(node.value):,} digits; no config value comes near it "
                       "(every count and amount is at most 1000000000)")
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _check(item, _child(path, i), name, lines, ancestors, visited)
    elif isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                yield from _check(value_node, path, name, lines, ancestors, visited)
                continue
            if not (isinstance(key_node, ScalarNode) and key_node.tag == _STR):
                shown = key_node.value if isinstance(key_node, ScalarNode) else type(key_node).__name__.removesuffix("Node").lower()
                yield _problem(key_node, name, lines, f"{_child(path, str(shown))}: the key {shown} is not text; config keys are "
                               f"names (quote it: '{shown}')")
                continue
            key = key_node.value
            first = seen.get(key)
            if first is not None:
                lines_of = sorted({first.start_mark.line + 1, key_node.start_mark.line + 1})
                where = f"lines {lines_of[0]} and {lines_of[1]}" if len(lines_of) == 2 else f"twice on line {lines_of[0]}"
                yield _problem(key_node, name, lines, f"{_child(path, key)} is given twice ({where.removeprefix('twice ')}); YAML "
                               "would keep only the last one; remove or merge one of them")
            seen[key] = key_node
            yield from _check(value_node, _child(path, key), name, lines, ancestors, visited)


def _expansion_problems(root: Node, name: str, lines: list[str]) -> list[Problem]:
    """The value that grows past MAX_VALUES once its aliases are expanded (as `json.dumps` and the program would),
    measured without expanding: each node's expanded size is computed once, from its children's."""
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is None:
            sizes[id(node)] = 0  # an alias that contains itself (reported by the walk) adds nothing here
            known = sizes[id(node)] = min(1 + sum(size(child) for _, _, child in _children(node)), MAX_VALUES + 1)
        return known

    if size(root) <= MAX_VALUES:
        return []
    node, path, at = root, "", root
    while True:  # descend to the smallest value that still expands past the bound: that is the one to name
        bigger = next(((step, where, child) for step, where, child in _children(node) if size(child) > MAX_VALUES), None)
        if bigger is None:
            break
        step, where, node = bigger
        path, at = _child(path, step) if step != "" else path, where
    return [_problem(at, name, lines, f"{path or 'the document'} holds more than {MAX_VALUES:,} values once its YAML aliases are "
                     "expanded (each *alias repeats its whole block); a stack config holds at most that many: write the "
                     "values out, or share a smaller block")]


def _children(node: Node) -> list[tuple[str | int, Node, Node]]:
    """(path step, node to point at, child) of a collection: for a mapping, each value with its key (a merge key adds no step)."""
    if isinstance(node, SequenceNode):
        return [(i, item, item) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        return [("" if k.tag == _MERGE or not isinstance(k, ScalarNode) else k.value, k, v) for k, v in node.value]
    return []
