"""Deployment targets: each translates the same plan into one platform's resources, nothing more."""

from __future__ import annotations

from components.plan.ir import Proxy
from components.render.nginx import render_proxy
from components.spec.schema import Spec
from components.targets.base import Target


def target_for(spec: Spec) -> Target:
    if spec.target == "kubernetes":
        from components.targets.kubernetes import KubernetesTarget

        return KubernetesTarget(spec)
    from components.targets.docker import DockerTarget

    return DockerTarget(spec)


def proxy_config(target: Target, proxy: Proxy) -> str:
    """The nginx.conf `proxy` runs on `target`: the plan's proxy, the target's addresses and process settings."""
    return render_proxy(proxy, target.address_map(proxy), target.nginx_runtime(proxy))
