"""Read a stack file's YAML strictly: a problem names file:line:column and shows the line, never a traceback.

PyYAML alone reports errors against `"<unicode string>"`, lets a repeated key silently replace the first one,
and turns `2024-01-01` into a `date` that no config value can hold. Here the document is composed first (every
node keeps its position), checked as a whole — duplicate keys, keys that are not text, dates, recursive aliases —
and only then built into Python values, so every such problem of the file is reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

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
            text += f"\n{gutter}{self.source_line}\n{' ' * (len(gutter) - 2)}| {' ' * (self.column - 1)}^"
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
            lines += [f"  - {first}", *(f"    {line}" for line in rest)]
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
        text = path.read_bytes().decode("utf-8")
    except OSError as error:
        raise StackFileError(path, [Problem(name, 1, 1, f"cannot read the file: {error.strerror or error}")]) from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise StackFileError(path, [Problem(name, line, 1, f"not UTF-8 text (byte {error.start}); save the file as UTF-8")]) from None
    lines = text.splitlines()
    loader: _StackLoader | None = None
    try:
        loader = _StackLoader(text)
        node = loader.get_single_node()
        if node is None:
            return Document(path, None, None, lines)
        problems = list(_check(node, "", name, lines, ancestors=set()))
        if problems:
            raise StackFileError(path, problems)
        return Document(path, loader.construct_document(node), node, lines)  # type: ignore[no-untyped-call]  # untyped in types-PyYAML
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


def _check(node: Node, path: str, name: str, lines: list[str], ancestors: set[int]) -> Iterator[Problem]:
    """Every problem under `node`: repeated keys, keys that are not plain text, dates, aliases that contain themselves."""
    if id(node) in ancestors:
        yield _problem(node, name, lines, f"{path or 'the document'} refers to itself through an alias; YAML config cannot be recursive")
        return
    ancestors = ancestors | {id(node)}
    if isinstance(node, ScalarNode) and node.tag == _TIMESTAMP:
        yield _problem(node, name, lines, f"{path}: {node.value} is a YAML date, not text; quote it ('{node.value}') if you mean the text")
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            yield from _check(item, _child(path, i), name, lines, ancestors)
    elif isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                yield from _check(value_node, path, name, lines, ancestors)
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
            yield from _check(value_node, _child(path, key), name, lines, ancestors)
