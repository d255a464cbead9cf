"""Files the offline plan writes under build/<stack>/ for review: what the target would deploy, rendered."""

from __future__ import annotations

from pathlib import Path

from components.nginx import render_nginx
from components.plan import Plan
from components.targets.base import Target
from offline.program import RecordedResource


def write_artifacts(target: Target, plan: Plan, resources: list[RecordedResource], out: Path) -> dict[str, str]:
    """Write the rendered gateway config (and target-specific files); return name -> path."""
    out.mkdir(parents=True, exist_ok=True)
    nginx_conf = out / "nginx.conf"
    nginx_conf.write_text(render_nginx(plan, target.address_map(), target.nginx_runtime()))
    return {"nginx_conf": str(nginx_conf)}
