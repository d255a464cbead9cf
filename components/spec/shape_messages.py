"""What a pydantic shape error means to the person who wrote the stack file: what is wrong, and what to write.

Pydantic says "Input should be a valid integer"; the report says "expected a whole number, got true (a boolean);
true/false are not numbers, write the number". One message per error type, and one for a value that fits none
of a union's alternatives ("expected a number of at least 0.001 or a list, got the text 'fast'").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from pydantic_core import ErrorDetails

_TYPE_EXPECTED = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "int_parsing_size": "a whole number", "float_type": "a number", "float_parsing": "a number",
    "finite_number": "a finite number", "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "text", "list_type": "a list", "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
}
_BOUNDS = {"greater_than": ("gt", "greater than"), "greater_than_equal": ("ge", "of at least"),
           "less_than": ("lt", "less than"), "less_than_equal": ("le", "of at most")}


def describe(value: Any) -> str:
    """A value as the user wrote it, with its kind when that is the point (`true (a boolean)`, `the text '80'`)."""
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        return f"the text {_short(repr(value))}"
    if isinstance(value, int) and value.bit_length() > 4 * 24:  # str() of a 4,300-digit int raises; count digits instead
        return f"a number of {len(str(abs(value))) if value.bit_length() < 14_000 else 'over 4,000'} digits"
    if isinstance(value, int | float):
        text = str(value)
        return text if len(text) <= 24 else f"a number of {len(text.lstrip('-'))} digits"  # (a sign is no digit)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return _short(repr(value))


def _number(value: object) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def _hint(expected: str, value: Any) -> str:
    """How to write the value so it means what the user probably meant."""
    if isinstance(value, bool) and expected == "text":
        return f"; quote it if you mean the text ('{str(value).lower()}')"
    if isinstance(value, bool) and expected != "true or false":
        return "; a boolean is not a number, write the number itself"
    numeric_text = isinstance(value, str) and re.fullmatch(r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*", value)
    if expected in ("a whole number", "a number", "a finite number") and numeric_text:
        return "; write the number without quotes"
    if expected == "true or false" and isinstance(value, str):
        return "; write true or false without quotes"
    if expected == "a whole number" and isinstance(value, float) and value.is_integer():
        return f"; write {int(value)}"
    if expected == "text" and isinstance(value, int | float):
        return f"; quote it if you mean the text ('{value}')"
    return ""


def expected(error: ErrorDetails) -> str | None:
    """What the error's check expects, as a noun phrase (`a list`, `a number of at least 0.001`); None if no phrase fits."""
    kind = error["type"]
    if kind in _TYPE_EXPECTED:
        return _TYPE_EXPECTED[kind]
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"a number {words} {_number(error.get('ctx', {}).get(key))}"
    return None


def message(error: ErrorDetails) -> str:
    """The report line for one pydantic error (its key path is the caller's)."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx", {})
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"must be {words.removeprefix('of ')} {_number(ctx.get(key))}, got {describe(value)}"
    if kind in _TYPE_EXPECTED:
        phrase = _TYPE_EXPECTED[kind]
        return f"expected {phrase}, got {describe(value)}{_hint(phrase, value)}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        close = difflib.get_close_matches(str(value), choices, n=1)
        suggestion = f" Did you mean '{close[0]}'?" if close else ""
        return f"{describe(value)} is not one of {', '.join(choices)}.{suggestion}"
    if kind in ("too_short", "too_long"):
        bound = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
        words = "at least" if kind == "too_short" else "at most"
        return f"needs {words} {bound} item{'s' if bound != 1 else ''}, got {ctx.get('actual_length')}"
    if kind == "string_too_short":
        return "must not be empty"
    return str(error["msg"]).removeprefix("Value error, ")


def union_message(errors: Sequence[ErrorDetails]) -> str:
    """One line for a value that fits none of a union's alternatives, each error being one alternative's objection."""
    phrases = [p for p in dict.fromkeys(expected(e) for e in errors) if p is not None]
    if len(errors) == 1 or len(phrases) < len(errors):
        return "; ".join(dict.fromkeys(message(e) for e in errors))
    value = errors[0].get("input")
    return f"expected {' or '.join(phrases)}, got {describe(value)}{_hint(phrases[0], value)}"
