"""Recorded pulumi-docker (and pulumi-command) resources translated into Docker API calls, validated first.

The pure half of :mod:`e2e.apply` (which executes the plans).

Under Pulumi mocks every registered resource is recorded as
``{type, name, urn, parent, inputs}`` with the inputs in Pulumi's camelCase
wire names (numbers arrive as floats). :func:`apply_docker_resources` maps
each input property *one-to-one* onto the Docker Engine API (docker SDK,
low-level ``APIClient``), following what the pulumi-docker provider
(kreuzwerker/docker) does with it, and **raises** :class:`UnsupportedPropertyError`
on any property (also nested ones) it does not understand -- nothing is
silently skipped. All resources are validated before the first Docker call,
so an unknown property creates nothing.

Supported types and properties (see ``_NETWORK``/``_VOLUME``/``_container_plan``):

* ``docker:index/network:Network``: name, driver, internal, attachable, ipv6,
  ipamDriver, ipamOptions, ipamConfigs[{subnet, gateway, ipRange, auxAddress}],
  labels[{label, value}], options (ingress: only false).
* ``docker:index/volume:Volume``: name, driver, driverOpts, labels.
* ``docker:index/container:Container``: see ``_container_plan``; property
  semantics of the provider: ``memory``/``memorySwap``/``memoryReservation``/
  ``shmSize`` in MB, ``cpus`` a decimal string, durations Go-style
  (``"5s"``, ``"1500ms"``, ``"1m30s"``), ``ports[].ip`` default ``0.0.0.0``,
  ``protocol`` default ``tcp``, no ``external`` = a random host port, ``restart``
  default ``no``, ``start``/``mustRun`` default true, ``wait`` waits for
  ``healthy`` (``waitTimeout`` s, default 60), ``destroyGraceSeconds`` = graceful
  stop before removal, ``removeVolumes`` (default true) on removal.

Networks: a container without ``networkMode`` is created attached to its
first ``networksAdvanced`` entry (by docker network *name*) and then connected
to the others, each with its aliases and static IPv4/IPv6 address, before it
starts. Uploads are written with ``put_archive`` into the created container
before start (Docker refuses this on a read-only root, as it does for the
provider).

``command:local:Command`` (pulumi-command) runs its ``create`` on the host, in record order after the
containers it depends on (``e2e.command``), with ``DOCKER_HOST`` pointing at the daemon (``docker_host``).

Resources of other packages: ``pulumi:*`` (the stack) and component types
(``netopt:*`` by default, see ``component_packages``) are skipped, any other
type raises :class:`UnsupportedResourceError`.
"""
from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.command import COMMAND, CommandPlan, command_plan

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"

MIB = 1024 * 1024


class UnsupportedPropertyError(ValueError):
    """An input property (or value) that has no one-to-one mapping here."""


class UnsupportedResourceError(ValueError):
    """A resource type this module cannot apply."""


class ApplyError(RuntimeError):
    """Docker accepted the objects, but they did not reach the declared state."""


# ----------------------------------------------------------------------------
# Property access that remembers what was read
# ----------------------------------------------------------------------------

_HARMLESS: tuple[Any, ...] = (None, False, [], {}, "")


class _Props:
    def __init__(self, where: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise UnsupportedPropertyError(f"{where}: expected an object, got {type(data).__name__}")
        self.where = where
        self.data = dict(data)
        self.used: set[str] = set()

    def _take(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def present(self, key: str) -> bool:
        return self.data.get(key) is not None

    def get_str(self, key: str, default: str | None = None) -> str | None:
        v = self._take(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected a string, got {v!r}")
        return v

    def get_bool(self, key: str, default: bool | None = None) -> bool | None:
        v = self._take(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected a boolean, got {v!r}")
        return v

    def get_int(self, key: str, default: int | None = None) -> int | None:
        v = self._take(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected an integer, got {v!r}")
        return int(v)

    def strs(self, key: str) -> list[str] | None:
        v = self._take(key)
        if v is None:
            return None
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected a list of strings, got {v!r}")
        return list(v)

    def strmap(self, key: str) -> dict[str, str] | None:
        v = self._take(key)
        if v is None:
            return None
        if not isinstance(v, Mapping) or not all(isinstance(x, str) for x in v.values()):
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected a map of strings, got {v!r}")
        return dict(v)

    def obj(self, key: str) -> _Props | None:
        v = self._take(key)
        return None if v is None else _Props(f"{self.where}.{key}", v)

    def objs(self, key: str) -> list[_Props]:
        v = self._take(key)
        if v is None:
            return []
        if not isinstance(v, (list, tuple)):
            raise UnsupportedPropertyError(f"{self.where}.{key}: expected a list, got {v!r}")
        return [_Props(f"{self.where}.{key}[{i}]", x) for i, x in enumerate(v)]

    def reject(self, key: str, why: str) -> None:
        """``key`` is understood but not supported: fine when absent or a no-op value."""
        v = self._take(key)
        if not any(v is h or (v == h and type(v) is type(h)) for h in _HARMLESS):
            raise UnsupportedPropertyError(f"{self.where}.{key}={v!r}: {why}")

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise UnsupportedPropertyError(f"{self.where}: unknown propert{'y' if len(unknown) == 1 else 'ies'} "
                                      f"{unknown} (no one-to-one Docker API mapping in e2e.apply)")


def _labels(p: _Props, key: str = "labels") -> dict[str, str] | None:
    items = p.objs(key)
    if not items:
        return None
    out = {}
    for lp in items:
        out[lp.get_str("label") or ""] = lp.get_str("value") or ""
        lp.done()
    return out


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def parse_duration(text: str, where: str = "duration") -> int:
    """Go ``time.ParseDuration`` (non-negative) -> nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise UnsupportedPropertyError(f"{where}: not a duration: {text!r}")
    return round(total)


def _mb(p: _Props, key: str) -> int | None:
    v = p.get_int(key)
    if v is None:
        return None
    return v if v < 0 else v * MIB


# ----------------------------------------------------------------------------
# Plans (pure: validated before any Docker call)
# ----------------------------------------------------------------------------

@dataclass
class NetworkPlan:
    urn: str
    name: str
    kwargs: dict[str, Any]


@dataclass
class VolumePlan:
    urn: str
    name: str
    kwargs: dict[str, Any]


@dataclass
class Upload:
    path: str
    data: bytes
    mode: int
    owner: str | None = None
    group: str | None = None


@dataclass
class ContainerPlan:
    urn: str
    name: str
    image: str
    create: dict[str, Any]
    host: dict[str, Any]
    networks: list[tuple[str, dict[str, Any]]]  # (docker network name, endpoint settings)
    network_mode: str | None
    uploads: list[Upload]
    start: bool = True
    must_run: bool = True
    wait: bool = False
    wait_timeout: float = 60.0
    running_timeout: float = 15.0
    destroy_grace: int | None = None
    remove_volumes: bool = True


def _network_plan(rec: Mapping[str, Any]) -> NetworkPlan:
    p = _Props(f"{NETWORK} {rec['name']!r}", rec.get("inputs") or {})
    name = p.get_str("name") or str(rec["name"])
    pools = []
    for ip in p.objs("ipamConfigs"):
        pools.append({"subnet": ip.get_str("subnet"), "gateway": ip.get_str("gateway"),
                      "iprange": ip.get_str("ipRange"), "aux_addresses": ip.strmap("auxAddress")})
        ip.done()
    ipam_driver = p.get_str("ipamDriver")
    ipam_options = p.strmap("ipamOptions")
    kwargs: dict[str, Any] = {
        "driver": p.get_str("driver"),
        "internal": p.get_bool("internal", False),
        "attachable": p.get_bool("attachable"),
        "enable_ipv6": p.get_bool("ipv6", False),
        "labels": _labels(p),
        "options": p.strmap("options"),
        "check_duplicate": True,
    }
    if pools or ipam_driver or ipam_options:
        kwargs["ipam"] = {"Driver": ipam_driver or "default", "Config": [
            {k2: v for k2, v in (("Subnet", x["subnet"]), ("Gateway", x["gateway"]),
                                 ("IPRange", x["iprange"]), ("AuxiliaryAddresses", x["aux_addresses"]))
             if v is not None} for x in pools], "Options": ipam_options or {}}
    p.reject("ingress", "swarm ingress networks are not supported")
    p.done()
    return NetworkPlan(str(rec.get("urn") or rec["name"]), name, kwargs)


def _volume_plan(rec: Mapping[str, Any]) -> VolumePlan:
    p = _Props(f"{VOLUME} {rec['name']!r}", rec.get("inputs") or {})
    name = p.get_str("name") or str(rec["name"])
    kwargs = {"driver": p.get_str("driver", "local"), "driver_opts": p.strmap("driverOpts"),
              "labels": _labels(p)}
    p.reject("cluster", "swarm cluster volumes are not supported")
    p.done()
    return VolumePlan(str(rec.get("urn") or rec["name"]), name, kwargs)


def _upload(u: _Props) -> Upload:
    path = u.get_str("file")
    if not path or not path.startswith("/"):
        raise UnsupportedPropertyError(f"{u.where}.file: an absolute path is required, got {path!r}")
    sources = [k for k in ("content", "contentBase64", "source") if u.present(k)]
    if len(sources) != 1:
        raise UnsupportedPropertyError(f"{u.where}: exactly one of content/contentBase64/source, got {sources}")
    content, b64, source = u.get_str("content"), u.get_str("contentBase64"), u.get_str("source")
    if content is not None:
        data = content.encode()
    elif b64 is not None:
        data = base64.b64decode(b64)
    else:
        data = Path(str(source)).read_bytes()
    u.get_str("sourceHash")  # only a change trigger for the provider: no Docker counterpart
    perms = u.get_str("permissions")
    mode = int(perms, 8) if perms else (0o744 if u.get_bool("executable", False) else 0o644)
    if perms:
        u.get_bool("executable")
    up = Upload(path, data, mode, u.get_str("owner"), u.get_str("group"))
    u.done()
    return up


def _host_config(p: _Props) -> dict[str, Any]:
    """HostConfig fields: privileges, resources, restart policy, capabilities, logging, ulimits, extra hosts."""
    host: dict[str, Any] = {
        "privileged": p.get_bool("privileged", False),
        "read_only": p.get_bool("readOnly", False),
        "security_opt": p.strs("securityOpts"),
        "tmpfs": p.strmap("tmpfs"),
        "sysctls": p.strmap("sysctls"),
        "dns": p.strs("dns"),
        "dns_opt": p.strs("dnsOpts"),
        "dns_search": p.strs("dnsSearches"),
        "group_add": p.strs("groupAdds"),
        "init": p.get_bool("init"),
        "ipc_mode": p.get_str("ipcMode"),
        "pid_mode": p.get_str("pidMode"),
        "userns_mode": p.get_str("usernsMode"),
        "cgroup_parent": p.get_str("cgroupParent"),
        "cgroupns": p.get_str("cgroupnsMode"),
        "storage_opt": p.strmap("storageOpts"),
        "auto_remove": p.get_bool("rm", False),
        "publish_all_ports": p.get_bool("publishAllPorts", False),
        "mem_limit": _mb(p, "memory"),
        "memswap_limit": _mb(p, "memorySwap"),
        "mem_reservation": _mb(p, "memoryReservation"),
        "shm_size": _mb(p, "shmSize"),
        "cpu_shares": p.get_int("cpuShares"),
        "cpuset_cpus": p.get_str("cpuSet"),
        "cpu_period": p.get_int("cpuPeriod"),
        "cpu_quota": p.get_int("cpuQuota"),
        "device_cgroup_rules": p.strs("deviceCgroupRules"),
    }
    cpus = p.get_str("cpus")
    if cpus is not None:
        try:
            host["nano_cpus"] = round(float(cpus) * 1e9)
        except ValueError:
            raise UnsupportedPropertyError(f"{p.where}.cpus: not a number: {cpus!r}") from None

    restart = p.get_str("restart", "no")
    if restart not in ("no", "on-failure", "always", "unless-stopped"):
        raise UnsupportedPropertyError(f"{p.where}.restart: {restart!r}")
    retries = p.get_int("maxRetryCount")
    if restart != "no":
        host["restart_policy"] = {"Name": restart, **({"MaximumRetryCount": retries} if retries else {})}
    elif retries:
        raise UnsupportedPropertyError(f"{p.where}.maxRetryCount needs restart=on-failure")

    caps = p.obj("capabilities")
    if caps is not None:
        host["cap_add"], host["cap_drop"] = caps.strs("adds"), caps.strs("drops")
        caps.done()

    log_driver, log_opts = p.get_str("logDriver"), p.strmap("logOpts")
    if log_driver or log_opts:
        host["log_config"] = {"Type": log_driver or "json-file", "Config": log_opts or {}}

    ulimits = []
    for u in p.objs("ulimits"):
        ulimits.append({"Name": u.get_str("name"), "Soft": u.get_int("soft"), "Hard": u.get_int("hard")})
        u.done()
    host["ulimits"] = ulimits or None

    hosts = {}
    for h in p.objs("hosts"):
        hosts[h.get_str("host") or ""] = h.get_str("ip") or ""
        h.done()
    host["extra_hosts"] = hosts or None

    return host


def _healthcheck(p: _Props) -> dict[str, Any] | None:
    hc = p.obj("healthcheck")
    if hc is None:
        return None
    health: dict[str, Any] = {"test": hc.strs("tests")}
    for key, api in (("interval", "interval"), ("timeout", "timeout"), ("startPeriod", "start_period")):
        v = hc.get_str(key)
        if v is not None:
            health[api] = parse_duration(v, f"{hc.where}.{key}")
    retries_hc = hc.get_int("retries")
    if retries_hc is not None:
        health["retries"] = retries_hc
    hc.reject("startInterval", "needs Docker API 1.44 (this harness drives dockerd 20.10, API 1.41)")
    hc.done()
    return health


def _ports(p: _Props, create: dict[str, Any], host: dict[str, Any]) -> None:
    """Exposed ports (create) and their bindings (host)."""
    # ports: {internal, external?, ip="0.0.0.0", protocol="tcp"}
    exposed: list[tuple[int, str]] = []
    bindings: dict[str, list[tuple[str, Any]]] = {}
    for pp in p.objs("ports"):
        internal = pp.get_int("internal")
        if internal is None:
            raise UnsupportedPropertyError(f"{pp.where}.internal is required")
        proto = pp.get_str("protocol", "tcp") or "tcp"
        exposed.append((internal, proto))
        bindings.setdefault(f"{internal}/{proto}", []).append((pp.get_str("ip", "0.0.0.0") or "0.0.0.0",
                                                               pp.get_int("external")))
        pp.done()
    if exposed:
        create["ports"] = exposed
        host["port_bindings"] = bindings


def _volumes(p: _Props, create: dict[str, Any], host: dict[str, Any]) -> None:
    """Binds, anonymous volumes, volumes_from and mounts."""
    binds: list[str] = []
    anonymous: list[str] = []
    volumes_from: list[str] = []
    mounts: list[dict[str, Any]] = []
    for vol in p.objs("volumes"):
        target = vol.get_str("containerPath")
        src = vol.get_str("hostPath") or vol.get_str("volumeName")
        frm = vol.get_str("fromContainer")
        ro = vol.get_bool("readOnly", False)
        vol.reject("selinuxRelabel", "SELinux relabelling is not supported")
        if frm:
            volumes_from.append(frm + (":ro" if ro else ""))
        elif target and src:
            binds.append(f"{src}:{target}:{'ro' if ro else 'rw'}")
        elif target:
            anonymous.append(target)
        else:
            raise UnsupportedPropertyError(f"{vol.where}: containerPath or fromContainer is required")
        vol.done()
    if anonymous:
        create["volumes"] = anonymous
    for m in p.objs("mounts"):
        mount: dict[str, Any] = {"Target": m.get_str("target"), "Type": m.get_str("type"), "Source": m.get_str("source"),
                                 "ReadOnly": m.get_bool("readOnly", False)}
        bo, to, vo = m.obj("bindOptions"), m.obj("tmpfsOptions"), m.obj("volumeOptions")
        if bo is not None:
            mount["BindOptions"] = {"Propagation": bo.get_str("propagation")}
            bo.done()
        if to is not None:
            mount["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", to.get_int("sizeBytes")),
                                                       ("Mode", to.get_int("mode"))) if v is not None}
            to.done()
        if vo is not None:
            drv = vo.get_str("driverName")
            mount["VolumeOptions"] = {
                "NoCopy": vo.get_bool("noCopy", False), "Labels": _labels(vo) or {},
                **({"DriverConfig": {"Name": drv, "Options": vo.strmap("driverOptions") or {}}}
                   if drv else {}),
            }
            if not drv:
                vo.reject("driverOptions", "needs volumeOptions.driverName")
            vo.reject("subpath", "needs Docker API 1.45")
            vo.done()
        m.done()
        mounts.append({k: v for k, v in mount.items() if v is not None})
    host["binds"] = binds or None
    host["volumes_from"] = volumes_from or None
    host["mounts"] = mounts or None


def _networks(p: _Props) -> list[tuple[str, dict[str, Any]]]:
    networks = []
    for n in p.objs("networksAdvanced"):
        net_name = n.get_str("name")
        if not net_name:
            raise UnsupportedPropertyError(f"{n.where}.name is required")
        ep = {"aliases": n.strs("aliases"), "ipv4_address": n.get_str("ipv4Address"),
              "ipv6_address": n.get_str("ipv6Address"), "link_local_ips": n.strs("linkLocalIps")}
        n.reject("macAddress", "a per-network MAC address needs Docker API 1.44")
        n.reject("driverOpts", "per-endpoint driver options are not supported by this harness")
        n.reject("gwPriority", "needs Docker API 1.48")
        n.done()
        networks.append((net_name, {k: v for k, v in ep.items() if v}))

    return networks


def _container_plan(rec: Mapping[str, Any]) -> ContainerPlan:
    p = _Props(f"{CONTAINER} {rec['name']!r}", rec.get("inputs") or {})
    name = p.get_str("name") or str(rec["name"])
    image = p.get_str("image")
    if not image:
        raise UnsupportedPropertyError(f"{p.where}.image is required")
    create: dict[str, Any] = {
        "name": name,
        "command": p.strs("command"),
        "entrypoint": p.strs("entrypoints"),
        "hostname": p.get_str("hostname"),
        "domainname": p.get_str("domainname"),
        "user": p.get_str("user"),
        "working_dir": p.get_str("workingDir"),
        "environment": p.strs("envs"),
        "labels": _labels(p),
        "stop_signal": p.get_str("stopSignal"),
        "stop_timeout": p.get_int("stopTimeout"),
        "stdin_open": p.get_bool("stdinOpen", False),
        "tty": p.get_bool("tty", False),
        "runtime": p.get_str("runtime"),
        "platform": p.get_str("platform"),
        "use_config_proxy": False,  # no ~/.docker/config.json proxy env: inputs only
    }
    host = _host_config(p)
    create["healthcheck"] = _healthcheck(p)
    _ports(p, create, host)
    _volumes(p, create, host)
    network_mode = p.get_str("networkMode")
    networks = _networks(p)
    uploads = [_upload(u) for u in p.objs("uploads")]

    plan = ContainerPlan(
        urn=str(rec.get("urn") or rec["name"]), name=name, image=image,
        create={k: v for k, v in create.items() if v is not None},
        host={k: v for k, v in host.items() if v is not None},
        networks=networks, network_mode=network_mode, uploads=uploads,
        start=bool(p.get_bool("start", True)),
        must_run=bool(p.get_bool("mustRun", True)),
        wait=bool(p.get_bool("wait", False)),
        wait_timeout=float(p.get_int("waitTimeout", 60) or 60),
        running_timeout=(p.get_int("containerReadRefreshTimeoutMilliseconds", 15000) or 15000) / 1000,
        destroy_grace=p.get_int("destroyGraceSeconds"),
        remove_volumes=bool(p.get_bool("removeVolumes", True)),
    )
    for key, why in (
        ("attach", "attaching to the container's output is not supported"),
        ("logs", "needs attach"),
        ("gpus", "GPUs are not available to the e2e daemon"),
        ("devices", "host devices are not passed to e2e containers"),
        ("deviceRequests", "device requests are not supported"),
        ("deviceReadBps", "blkio throttling is not supported"),
        ("deviceReadIops", "blkio throttling is not supported"),
        ("deviceWriteBps", "blkio throttling is not supported"),
        ("deviceWriteIops", "blkio throttling is not supported"),
        ("links", "legacy links are not supported"),
    ):
        p.reject(key, why)
    p.done()
    return plan


def _records(resources: Iterable[Any]) -> list[dict[str, Any]]:
    out = []
    for r in resources:
        if isinstance(r, Mapping):
            out.append(dict(r))
        else:  # an object with attributes (e.g. the lead's record type)
            out.append({k: getattr(r, k, None) for k in ("type", "name", "urn", "parent", "inputs", "dependencies",
                                                         "delete_before_replace", "ignore_changes",
                                                         "property_dependencies")})
    return out


Plan = NetworkPlan | VolumePlan | ContainerPlan | CommandPlan


def plan_record(rec: Mapping[str, Any], component_packages: Sequence[str] = ("netopt",)) -> Plan | None:
    """One record's plan; None for the stack and component resources (grouping only)."""
    typ = str(rec.get("type") or "")
    pkg = typ.split(":", 1)[0]
    if typ == NETWORK:
        return _network_plan(rec)
    if typ == VOLUME:
        return _volume_plan(rec)
    if typ == CONTAINER:
        return _container_plan(rec)
    if typ == COMMAND:
        return command_plan(rec)
    if (pkg == "pulumi" and not typ.startswith("pulumi:providers:")) or pkg in component_packages:
        return None
    raise UnsupportedResourceError(f"{typ!r} ({rec.get('name')!r}) cannot be applied by e2e.apply")


def plan_docker_resources(resources: Iterable[Any], *, component_packages: Sequence[str] = ("netopt",)
                          ) -> list[Plan]:
    """Validate and translate every record; raises before anything is created."""
    plans: list[Plan] = []
    for rec in _records(resources):
        plan = plan_record(rec, component_packages)
        if plan is not None:
            plans.append(plan)
    # Networks and volumes first; containers and commands in declaration order (which follows dependencies).
    order = {NetworkPlan: 0, VolumePlan: 1, ContainerPlan: 2, CommandPlan: 2}
    return sorted(plans, key=lambda x: order[type(x)])
