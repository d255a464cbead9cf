"""Files the offline plan writes under build/<stack>/ for review: what the target would deploy, rendered."""

from __future__ import annotations

from pathlib import Path

from components.nginx import render_nginx
from components.plan import Plan
from components.targets.base import Target
from offline.manifests import manifests, write_manifests
from offline.program import RecordedResource


def write_artifacts(target: Target, plan: Plan, resources: list[RecordedResource], out: Path) -> dict[str, str]:
    """Write the rendered gateway config (and target-specific files); return name -> path.

    For the kubernetes target that is every manifest the provider would apply, in the layout of its render-only
    mode (`netopt:kubernetes.render_yaml_to_directory`) under `manifests/`, and as one ordered `manifests.yaml`.
    """
    out.mkdir(parents=True, exist_ok=True)
    nginx_conf = out / "nginx.conf"
    nginx_conf.write_text(render_nginx(plan, target.address_map(), target.nginx_runtime()))
    artifacts = {"nginx_conf": str(nginx_conf)}
    if plan.spec.target == "kubernetes":
        artifacts |= write_manifests(manifests(resources), out)
    return artifacts
