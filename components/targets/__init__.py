"""Deployment targets: each translates the same plan into one platform's resources, nothing more."""

from __future__ import annotations

from components.spec.schema import Spec
from components.targets.base import Target


def target_for(spec: Spec) -> Target:
    if spec.target == "kubernetes":
        from components.targets.kubernetes import KubernetesTarget

        return KubernetesTarget(spec)
    from components.targets.docker import DockerTarget

    return DockerTarget(spec)
