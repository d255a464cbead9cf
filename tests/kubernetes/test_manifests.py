"""Every manifest the kubernetes target would send validates strictly against Kubernetes 1.30 and 1.37."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from offline.manifests import KUBERNETES_VERSIONS, ManifestError, manifests, render_path, validate_manifests
from offline.plan import build_plan_document
from offline.program import RecordedResource
from tests.kubernetes.conftest import PROD


def test_every_manifest_validates_strictly_against_1_30_and_1_37(prod_manifests: list[dict[str, Any]]) -> None:
    assert KUBERNETES_VERSIONS == ("1.30", "1.37")
    passed = validate_manifests(prod_manifests)
    assert len(passed) == 2 * len(prod_manifests)
    assert sum("valid against 1.30 (strict)" in line for line in passed) == len(prod_manifests)
    assert sum("valid against 1.37 (strict)" in line for line in passed) == len(prod_manifests)


def test_every_kubernetes_resource_becomes_a_manifest(prod_resources: list[RecordedResource], prod_manifests: list[dict[str, Any]]) -> None:
    kubernetes = [r for r in prod_resources if r.type.startswith("kubernetes:")]
    # 1 Namespace; 8 Deployments, 8 Services, 8 PodDisruptionBudgets (5 workloads, the gateway, the proxies of the
    # called api and auth); 3 ConfigMaps (gateway, api-proxy, auth-proxy); 16 NetworkPolicies (default-deny, DNS,
    # sources -> gateway, the gateway's egress; ingress of the 5 workloads and 2 proxies; egress of the 3 callers
    # web, api, api-canary and the 2 proxies); 1 HorizontalPodAutoscaler (api)
    assert len(prod_manifests) == len(kubernetes) == 1 + 3 * 8 + 3 + 16 + 1
    for manifest in prod_manifests:
        assert list(manifest)[:3] == ["apiVersion", "kind", "metadata"]
        assert manifest["kind"] == "Namespace" or manifest["metadata"]["namespace"] == "shop-prod"
    assert prod_manifests[0]["kind"] == "Namespace", "apply order: the namespace first"


def test_the_kubernetes_validate_cli_passes_them_with_no_warning(prod_manifests: list[dict[str, Any]], tmp_path: Path) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(prod_manifests))
    run = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", "1.30.0", "-k", "1.37.0", str(path)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARN" not in run.stdout and "ERROR" not in run.stdout
    assert run.stdout.count("INFO") == 2 * len(prod_manifests)


def test_an_unknown_kind_is_an_error_not_a_warning(prod_manifests: list[dict[str, Any]]) -> None:
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "x", "namespace": "shop-prod"}, "spec": {}}
    with pytest.raises(ManifestError, match="unknown kind"):
        validate_manifests([*prod_manifests, unknown])


def test_an_unknown_field_is_an_error(prod_manifests: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(next(m for m in prod_manifests if m["kind"] == "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFs"] = True
    with pytest.raises(ManifestError, match="readOnlyRootFs"):
        validate_manifests([deployment])
    with pytest.raises(ManifestError, match=r"against 1\.30"):
        validate_manifests([deployment], versions=("1.30",))


def test_an_unknown_value_cannot_become_a_manifest() -> None:
    from pulumi.runtime import rpc

    resource = RecordedResource("kubernetes:core/v1:Service", "s", "urn", "", True,
                                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": rpc.UNKNOWN}})
    with pytest.raises(ManifestError, match="not known before deployment"):
        manifests([resource])


def test_make_plan_writes_the_manifests_under_the_build_directory(prod_manifests: list[dict[str, Any]], tmp_path: Path) -> None:
    document = build_plan_document(PROD, out_dir=tmp_path)
    artifacts = document["artifacts"]
    assert document["target"] == "kubernetes"
    assert set(artifacts) == {"nginx_conf", "proxy:api-proxy", "proxy:auth-proxy", "manifests_dir", "manifests_yaml", "manifests_validation"}
    combined = list(yaml.safe_load_all(Path(artifacts["manifests_yaml"]).read_text()))
    assert combined == prod_manifests
    files = sorted((tmp_path / "manifests" / "1-manifest").glob("*.yaml"))
    assert [f.relative_to(tmp_path / "manifests").as_posix() for f in files] == sorted(render_path(m) for m in prod_manifests)
    assert "1-manifest/apps_v1-deployment-shop-prod-gateway.yaml" in {render_path(m) for m in prod_manifests}
    for path in files:
        (manifest,) = yaml.safe_load_all(path.read_text())
        assert render_path(manifest) == path.relative_to(tmp_path / "manifests").as_posix()
    assert len(Path(artifacts["manifests_validation"]).read_text().splitlines()) == 2 * len(prod_manifests)
    config_maps = {m["metadata"]["labels"]["app.kubernetes.io/name"]: m["data"]["nginx.conf"] for m in combined if m["kind"] == "ConfigMap"}
    assert config_maps["gateway"] == Path(artifacts["nginx_conf"]).read_text(), "the reviewed nginx.conf is the one deployed"
    for proxy in ("api-proxy", "auth-proxy"):
        assert config_maps[proxy] == Path(artifacts[f"proxy:{proxy}"]).read_text(), f"the reviewed {proxy} config is the one deployed"


def test_a_second_plan_leaves_no_stale_manifest(tmp_path: Path) -> None:
    stale = tmp_path / "manifests" / "1-manifest" / "v1-configmap-shop-prod-gateway-nginx-0000000000.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}\n")
    build_plan_document(PROD, out_dir=tmp_path)
    assert not stale.exists()


def test_docker_stacks_write_no_manifests(tmp_path: Path) -> None:
    artifacts = build_plan_document("dev", out_dir=tmp_path)["artifacts"]
    assert "nginx_conf" in artifacts and not {"manifests_dir", "manifests_yaml", "manifests_validation"} & set(artifacts)
    assert not (tmp_path / "manifests").exists()
