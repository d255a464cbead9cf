"""Connectivity of rendered manifests as network-config-analyzer computes it (an analyzer we did not write).

`nca --connectivity -r <dir> -o txt_no_fw_rules` prints one line per allowed (source, destination) pair,
`src => dst : connections`, with Deployments as `<namespace>/<name>[Deployment]`, address ranges as
`first-last`, and a simulated cluster DNS pod it adds itself (`kube-system/kube-dns-livesim[Pod]`).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offline.manifests import write_manifests

NCA = Path(sys.executable).parent / "nca"
DNS_POD = "kube-system/kube-dns-livesim[Pod]"
DNS = "{protocols:TCP, UDP,dst_ports:53}"
EVERYWHERE_V4 = "0.0.0.0-255.255.255.255"
EVERYWHERE_V6 = "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"


@dataclass(frozen=True, order=True)
class Connection:
    source: str
    destination: str
    allowed: str


def tcp(port: int) -> str:
    return f"{{protocols:TCP,dst_ports:{port}}}"


def deployment(namespace: str, name: str) -> str:
    return f"{namespace}/{name}[Deployment]"


def connectivity(documents: list[dict[str, Any]], workdir: Path) -> set[Connection]:
    """Every connection nca finds allowed between the manifests' pods, address ranges and the cluster DNS."""
    write_manifests(documents, workdir)
    result = subprocess.run([str(NCA), "--connectivity", "-r", str(workdir / "manifests" / "1-manifest"), "-o", "txt_no_fw_rules"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"nca failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    found = set()
    for line in result.stdout.splitlines():
        if " => " not in line:
            continue
        pair, _, allowed = line.partition(" : ")
        source, _, destination = pair.partition(" => ")
        found.add(Connection(source.strip(), destination.strip(), allowed.strip()))
    assert found, f"nca printed no connection:\n{result.stdout}\n{result.stderr}"
    return found


def in_namespace(connections: set[Connection], namespace: str) -> set[Connection]:
    """Connections from or to a pod of `namespace` (nca also reports the DNS pod's own unrestricted traffic)."""
    prefix = f"{namespace}/"
    return {c for c in connections if c.source.startswith(prefix) or c.destination.startswith(prefix)}
