"""An observation given to the plan (`make plan OBSERVED=<observe json>`): what reaches the report and the pack.

The program reads the file named by the `netopt-observed:file` config key (the offline plan sets it from
`--observed`; with the Pulumi CLI: `pulumi config set netopt-observed:file <path>`) and puts, under the report's
`observed` key, the file's absolute path, its SHA-256 and its measured inputs. The `observed-drift` gate
(policies/drift.py) does not take the program's word for them: it re-reads the file, checks the digest, and
compares the measured values with the report's declared ones itself.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from components.observe.observation import OBSERVATION_SCHEMA
from components.spec.schema import Spec
from components.spec.validation import Issue, SpecError

CONFIG_NAMESPACE = "netopt-observed"
CONFIG_KEY = f"{CONFIG_NAMESPACE}:file"


def read_observation(path_text: str) -> tuple[Path, dict[str, Any], str]:
    """(absolute path, the observe JSON, its SHA-256); a SpecError naming the key when it cannot be used."""
    path = Path(path_text).resolve()
    try:
        data = path.read_bytes()
        document = json.loads(data)
    except OSError as error:
        raise SpecError([Issue(CONFIG_KEY, f"cannot read the observation {path}: {error.strerror}; give the file "
                                           "`make observe STACK=<s> LOG=<log> FORMAT=json` wrote")]) from None
    except ValueError as error:
        raise SpecError([Issue(CONFIG_KEY, f"{path} is not JSON ({error}); give the output of `make observe ... FORMAT=json`")]) from None
    if not isinstance(document, dict) or document.get("schema") != OBSERVATION_SCHEMA or not isinstance(document.get("measured"), dict):
        raise SpecError([Issue(CONFIG_KEY, f"{path} is no observe document of schema {OBSERVATION_SCHEMA} (no `schema`/`measured` keys); "
                                           "give the output of `make observe ... FORMAT=json`")])
    return path, document, hashlib.sha256(data).hexdigest()


def observed_section(spec: Spec, path: Path, document: dict[str, Any], digest: str) -> dict[str, Any]:
    """The report's `observed` key: where the observation is, its digest, and what it measured."""
    log = document.get("log") or {}
    return {
        "file": str(path),
        "sha256": digest,
        "stack": document.get("stack"),
        "environment": document.get("environment"),
        "requests": log.get("requests"),
        "calls": log.get("calls"),
        "span_s": log.get("span_s"),
        "matches_environment": document.get("environment") == spec.environment and document.get("target") == spec.target,
        "measured": document["measured"],
        "drift": [d.get("message") for d in document.get("drift") or []],
    }
