"""Writing nginx config text: blocks indented by structure, durations, quoting, map keys."""

from __future__ import annotations


class Writer:
    """Lines of a config; `block` opens `header {` and closes `}` at the right depth."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        self._lines.append(("    " * self._depth + text) if text else "")

    def block(self, header: str) -> _Block:
        return _Block(self, header)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


class _Block:
    def __init__(self, writer: Writer, header: str) -> None:
        self.writer, self.header = writer, header

    def __enter__(self) -> None:
        self.writer.line(f"{self.header} {{")
        self.writer._depth += 1

    def __exit__(self, *_: object) -> None:
        self.writer._depth -= 1
        self.writer.line("}")


def duration(seconds: float) -> str:
    """nginx's time syntax: whole seconds as `5s`, anything else in milliseconds."""
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{round(seconds * 1000)}ms"


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_MAP_PARAMETERS = frozenset({"default", "hostnames", "include", "volatile"})


def map_key(value: str) -> str:
    """A map source value that is literally a map parameter's name (a route named `default`) is written `\\default`."""
    return "\\" + value if value in _MAP_PARAMETERS else value
