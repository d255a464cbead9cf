"""Files the offline plan writes under build/<stack>/ for review: what the target would deploy, rendered.

The directory always holds the artifacts of exactly one successful plan: they are written into a fresh sibling
directory and swapped in with renames, so no file of an earlier run (a Kubernetes manifest after a switch to
Docker) survives, and a plan that fails half-way leaves the previous set untouched until `remove_artifacts`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from components.plan.build import Plan
from offline.manifests import manifests, write_manifests
from offline.program import RecordedResource


def write_artifacts(plan: Plan, configs: Mapping[str, str], resources: list[RecordedResource], out: Path) -> dict[str, str]:
    """Write the rendered gateway config, each service proxy's (`proxies/<name>.nginx.conf`; `configs`: the text of
    each by proxy name, as the program deployed it) and target-specific files as one set replacing `out`; return
    name -> path.

    For the kubernetes target that is every manifest the provider would apply, in the layout of its render-only
    mode (`netopt:kubernetes.render_yaml_to_directory`) under `manifests/`, and as one ordered `manifests.yaml`.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    try:
        (staging / "nginx.conf").write_text(configs[plan.gateway.name])
        names = {"nginx_conf": "nginx.conf"}
        if plan.services:
            (staging / "proxies").mkdir()
        for proxy in plan.services:
            relative = proxy_config_path(proxy.name)
            (staging / relative).write_text(configs[proxy.name])
            names[f"proxy:{proxy.name}"] = relative
        if plan.spec.target == "kubernetes":
            written = write_manifests(manifests(resources), staging)
            names |= {name: str(Path(path).relative_to(staging)) for name, path in written.items()}
        os.chmod(staging, 0o755)  # mkdtemp makes it private; the set is for review, like any build output
        _swap_in(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {name: str(out / relative) for name, relative in names.items()}


def proxy_config_path(name: str) -> str:
    """Where a service proxy's rendered config lands under build/<stack>/ (the plan JSON's `proxies[].config`)."""
    return f"proxies/{name}.nginx.conf"


def _swap_in(staging: Path, out: Path) -> None:
    """Replace `out` by `staging`: two renames on one file system, the old set deleted only once the new one is in place."""
    if not out.exists():
        staging.rename(out)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(retired / "set")
    staging.rename(out)
    shutil.rmtree(retired, ignore_errors=True)


def remove_artifacts(out: Path) -> bool:
    """Delete the artifacts of an earlier run (after a failed plan they no longer match the stack file); True if any."""
    if not out.is_dir():
        return False
    shutil.rmtree(out)
    return True
