"""User text shown back in a report: control characters escaped and long values cut, so a report is always readable.

A stack file can carry a NUL, an ANSI escape or a bidi override through YAML's double-quoted escapes (`"\\0"`,
`"\\e[2J"`); echoed raw, they truncate the report in C tools, repaint the user's terminal or reorder what it shows.
Every report line goes through `printable`; values quoted in a message go through `shorten` first.
"""

from __future__ import annotations

SHOWN_CHARACTERS = 60
"""How much of a long value a message quotes: enough to recognise it, never megabytes of it."""


def printable(text: str) -> str:
    """`text` with every non-printable character but a tab written as its escape (`\\x00`, `\\x1b`, `\\u202e`)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else _escape(c) for c in text)


def shorten(text: str, limit: int = SHOWN_CHARACTERS) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[: limit - 3]}... ({len(text):,} characters)"


def _escape(character: str) -> str:
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
