"""The config every spec model shares (components/spec/schema.py's `Strict`, runtime.py's models)."""

from __future__ import annotations

from pydantic import ConfigDict

STRICT_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
"""Unknown keys are errors, values are immutable once validated, and types are strict: `true` is not the port 1,
`"8080"` is not a number, NaN and infinity are not numbers; only a whole number still counts where a number with a
fraction is expected."""
