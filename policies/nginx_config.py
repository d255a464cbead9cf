"""The gateway's nginx.conf as nginx reads it: parsed by crossplane (NGINX's own parser, not ours), once per text.

Every gate that reads the deployed config (keepalive, retries, the recomputed scores) goes through
`parse_config`, so a config is parsed once per pack process however many gates and requests read it (a 1,000-route
config takes ~0.8 s). crossplane also checks each directive's context and argument count against nginx's directive
table; what it reports is kept in `ParsedConfig.errors`, and the gates that recompute numbers refuse a config
with errors instead of guessing.
"""

from __future__ import annotations

import hashlib
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crossplane


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None
    line: int = 0

    def children(self, name: str) -> Iterator[Directive]:
        return (d for d in self.block or [] if d.name == name)


@dataclass(frozen=True)
class ParsedConfig:
    directives: list[Directive]
    errors: tuple[str, ...]  # crossplane's findings ("line 12: unknown directive ..."); empty for a valid config

    def http(self) -> Directive | None:
        return next((d for d in self.directives if d.name == "http" and d.block is not None), None)

    def stream(self) -> Directive | None:
        return next((d for d in self.directives if d.name == "stream" and d.block is not None), None)


def sha256_text(text: str) -> str:
    """The digest the pack computes itself from a deployed config (UTF-8 bytes, hex)."""
    return hashlib.sha256(text.encode()).hexdigest()


_CACHE: dict[str, ParsedConfig] = {}
_LOCK = threading.Lock()
_CACHE_ENTRIES = 8  # a stack deploys one gateway config; a few distinct ones when a fixture edits a copy


def parse_config(text: str) -> ParsedConfig:
    """`text` parsed by crossplane (single file, no includes: the generated config is self-contained)."""
    key = sha256_text(text)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    with tempfile.TemporaryDirectory(prefix="netopt-policy-") as directory:
        path = Path(directory) / "nginx.conf"
        path.write_text(text)
        payload: dict[str, Any] = crossplane.parse(str(path), single=True, comments=False, catch_errors=True)
    files = payload.get("config") or [{}]
    errors = tuple(f"line {e.get('line') or '?'}: {e.get('error')}".replace(str(path), "nginx.conf") for e in payload.get("errors") or [])
    parsed = ParsedConfig(_directives(files[0].get("parsed") or []), errors)
    with _LOCK:
        if len(_CACHE) >= _CACHE_ENTRIES:
            _CACHE.clear()
        _CACHE[key] = parsed
    return parsed


def _directives(items: list[dict[str, Any]]) -> list[Directive]:
    return [Directive(str(item["directive"]), [str(a) for a in item.get("args") or []],
                      _directives(item["block"]) if "block" in item else None, int(item.get("line") or 0))
            for item in items]


def parse_nginx(text: str) -> list[Directive]:
    """The directive tree of `text` (whatever crossplane could parse; `parse_config` also gives its errors)."""
    return parse_config(text).directives


def walk(directives: Iterable[Directive]) -> Iterator[Directive]:
    for directive in directives:
        yield directive
        if directive.block:
            yield from walk(directive.block)
