"""Convert each analyzed resource's properties once per request instead of once per policy.

pulumi-policy 1.21.0 (`_PolicyAnalyzerServicer.Analyze` and `AnalyzeStack`) runs
`unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(props)))` inside its loop over
policies, so a pack with P policies converts every resource P times (and, in `AnalyzeStack`, the whole stack P
times). For a 1,000-workload stack that alone is several seconds. This module memoises those three steps on the
identity of their argument, per thread: the servicer hands the same protobuf message (upb returns one wrapper
object per sub-message) to each policy, so the second and later policies get the already converted, read-only
view. The unknown-checking view itself is built lazily (`_LazyDict`): a value is wrapped when a policy reads it.
`Analyze` and `AnalyzeStack` are the library's own, line for line, but for building the resource's views (and, for
`AnalyzeStack`, the stack's linked PolicyResources) once per request rather than once per policy; the stack
policies then share those objects read-only (none of netopt's policies writes to a resource it is given). `Analyze`
also decides once per resource type and pack configuration which policies it runs: a gate that says it reports
nothing on a type (`framework.ResourceGatePolicy.skips`) is not called there. The provider view is built once per
distinct provider.
The runtime settings and stack config each request sets from the environment (`_configure_runtime_settings`) are
set again per request, but parsed and built once per distinct environment.
Nothing else about the servicer changes: which policies run, their levels, the diagnostics and the not-applicable
reasons are byte-for-byte what the unpatched library returns (tests/policy compares both).

Only the no-option call forms are memoised (`Remediate` asks for secret-preserving proxies and is left alone).
Set NETOPT_POLICY_NO_MEMO=1 to run the library unpatched.

The patch (`fastpath_patch.py`) replaces module globals of `pulumi_policy.policy` and subclasses the private
`_DictProxy`/`_ListProxy`, so this module imports and installs it only on the exact library version it was written
and tested for (`WRITTEN_FOR`); any other version runs the library's stock path — identical verdicts, a slower
analysis (policies/README.md, Performance) — with a warning on the pack's stderr. Moving to a new pulumi-policy:
re-read `_PolicyAnalyzerServicer.Analyze`/`AnalyzeStack`, run tests/policy (every fixture is analyzed both ways)
and `python -m offline.analyzer --generated 1000 --compare-stock`, then update `WRITTEN_FOR`.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

WRITTEN_FOR = "1.21.0"  # the pulumi-policy version whose servicer internals fastpath_patch.py patches


def installed_version() -> str:
    try:
        return importlib.metadata.version("pulumi-policy")
    except importlib.metadata.PackageNotFoundError:  # importable without its metadata: not a version we know
        return "unknown"


def install() -> bool:
    """Install the fast path; False when disabled, already installed, or on another library version (with a warning)."""
    if os.environ.get("NETOPT_POLICY_NO_MEMO") == "1":
        return False
    version = installed_version()
    if version != WRITTEN_FOR:
        warnings.warn(f"netopt policy pack: policies/fastpath_patch.py patches pulumi-policy internals and was written for "
                      f"pulumi-policy=={WRITTEN_FOR}, but {version} is installed: running the library's stock path instead "
                      f"(same verdicts, slower). Pin pulumi-policy=={WRITTEN_FOR} (policies/requirements.txt), or re-verify "
                      "the fast path against the new version and update WRITTEN_FOR.", RuntimeWarning, stacklevel=2)
        return False
    from policies import fastpath_patch  # imported only here: it subclasses private classes of this exact version

    return fastpath_patch.apply()
