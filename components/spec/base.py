"""The building blocks every spec object shares: the strict base model and the bounded scalar types.

Kept apart from the objects themselves (`schema`, `calls`, `runtime`) so each of those modules states only shapes.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

DNS_LABEL = r"^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$"
IDENTIFIER = r"^[a-z][a-z0-9_-]{0,62}$"

Name = Annotated[str, Field(pattern=DNS_LABEL)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER)]
LARGEST = 1_000_000_000
"""Ceiling of every count and amount: far above any real config, within nginx's and Docker's integer fields."""
Count = Annotated[int, Field(ge=1, le=LARGEST)]
Amount = Annotated[float, Field(gt=0, le=LARGEST)]
Seconds = Annotated[float, Field(gt=0, le=31_536_000)]  # up to a year

Algorithm = Literal["round_robin", "weighted", "least_conn", "ip_hash", "consistent_hash", "latency_weighted", "latency_optimal"]


STRICT_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
"""Unknown keys are errors, values are immutable once validated, and types are strict: `true` is not the port 1,
`"8080"` is not a number, NaN and infinity are not numbers; only a whole number still counts where a number with a
fraction is expected."""


class Strict(BaseModel):
    """Base for every spec object (`STRICT_CONFIG`)."""

    model_config = STRICT_CONFIG


def hash_key_form(value: str | None) -> str | None:
    """A consistent_hash key: `client_ip`, `uri`, `header:<Name>` or `cookie:<name>`.

    `cookie:<name>` becomes nginx's `$cookie_<name>`, whose name ends at the first character that is not a letter,
    digit or underscore (even inside `${…}`): `$cookie_md.sid` passes `nginx -t` and hashes cookie `md` followed
    by the text `.sid`. RFC 6265 allows `.` and `-` in cookie names, but nginx cannot read such a cookie by name."""
    if value is None or re.fullmatch(r"client_ip|uri|header:[A-Za-z0-9-]+|cookie:[A-Za-z0-9_]+", value):
        return value
    kind, _, name = value.partition(":")
    allowed = {"cookie": "A-Za-z0-9_", "header": "A-Za-z0-9-"}.get(kind)
    bad = re.search(f"[^{allowed}]", name) if allowed and name else None
    if kind == "cookie" and bad:
        raise ValueError(f"hash_key {value!r}: the character {bad.group(0)!r} cannot be in the cookie name: nginx reads a cookie "
                         f"as the variable $cookie_<name>, whose name takes letters, digits and '_' only (it would stop at "
                         f"{bad.group(0)!r} and hash another cookie); rename the cookie, or hash on a header:<Name> instead")
    if kind == "header" and bad:
        raise ValueError(f"hash_key {value!r}: the character {bad.group(0)!r} cannot be in a header name here (letters, digits, '-')")
    raise ValueError("hash_key must be one of client_ip, uri, header:<Name>, cookie:<name>")

