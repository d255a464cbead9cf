"""How a container runs, in Docker's and Kubernetes' own vocabulary: its user, the capabilities it gets back, its
extra named ports, CPU and memory requests below its limits, and its Docker restart policy.

Shapes only (the schema imports them); what each target makes of them is in components/targets/, and what cannot
work on a target is refused in components/spec/runtime_checks.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, field_validator

from components.spec.base import STRICT_CONFIG

MAX_ID = 2_147_483_647
"""The largest uid/gid Kubernetes accepts (runAsUser, runAsGroup are validated to 0..2^31-1)."""

UNPRIVILEGED_PORT_START = 1024
"""Linux's default `net.ipv4.ip_unprivileged_port_start`: a non-root process may bind only ports from here up."""


def _number_is_a_uid(value: object) -> object:
    """`run_as_user: 10001` (a YAML number) is the uid 10001: Kubernetes' runAsUser is a number too."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def user_ids(user: str) -> tuple[int, int]:
    """(uid, gid) of a validated user: the gid defaults to the uid (Docker would give a uid unknown to the image's
    /etc/passwd the group 0, root's group; Kubernetes the image's choice)."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def uid_gid(user: str) -> str:
    """A validated user as `uid:gid` (`user_ids`), the form both targets are given."""
    return "{}:{}".format(*user_ids(user))


def _non_root(value: str) -> str:
    if not re.fullmatch(r"[0-9]{1,10}(:[0-9]{1,10})?", value):
        raise ValueError(f"{value!r} is not a numeric user: write uid or uid:gid (e.g. \"10001\" or \"999:999\"); names are not "
                         "accepted because Kubernetes' runAsUser takes a number and nothing can check a name against the image")
    uid, gid = user_ids(value)
    if max(uid, gid) > MAX_ID:
        raise ValueError(f"{value!r}: ids go up to {MAX_ID} (Kubernetes refuses larger runAsUser/runAsGroup)")
    if uid == 0:
        raise ValueError(f"{value!r} is root (uid 0): every container here runs as a non-root user, as the kubernetes namespace's "
                         "\"restricted\" Pod Security Standard requires (runAsNonRoot), so a process that escapes its container is "
                         "nobody on the host; use the image's own non-root user (e.g. 999 for the official mongo, mysql, redis and "
                         "rabbitmq images) or 65532")
    return value


NonRootUser = Annotated[str, BeforeValidator(_number_is_a_uid), AfterValidator(_non_root)]
"""`uid` or `uid:gid`, uid ≥ 1 (text, or a number for the uid alone)."""

CAPABILITIES: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT",
    "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
    "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
"""Linux's capabilities, in the kernel's numbering (include/uapi/linux/capability.h, CAP_CHOWN = 0 ... 40)."""

RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
"""The only capability the "restricted" Pod Security Standard lets a container add back after dropping ALL."""


class Strict(BaseModel):
    model_config = STRICT_CONFIG


class Capabilities(Strict):
    """Linux capabilities a container gets back after dropping ALL (the drop is not negotiable).

    For a non-root process they are a ceiling, not a grant: Docker puts them in the container's bounding set only, and
    neither runtime sets ambient capabilities, so a process gets one only from a program file that carries it as a
    file capability, and no-new-privileges (always set here) lets that happen on Kubernetes only. Binding a port below
    1024 needs none: the targets lower `net.ipv4.ip_unprivileged_port_start` instead (README).
    """

    add: list[str] = []

    @field_validator("add")
    @classmethod
    def _known_once(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.upper().removeprefix("CAP_") in CAPABILITIES and name != name.upper().removeprefix("CAP_"):
                raise ValueError(f"write {name!r} as {name.upper().removeprefix('CAP_')!r}: uppercase, without CAP_ (Kubernetes' form)")
            if name == "ALL":
                raise ValueError("add: [ALL] gives the container every capability, privileged mode in all but name; list the "
                                 "capabilities it needs")
            if name not in CAPABILITIES:
                raise ValueError(f"{name!r} is not a Linux capability; known: {', '.join(CAPABILITIES)}")
        if len(set(value)) != len(value):
            raise ValueError(f"lists a capability twice ({', '.join(sorted({c for c in value if value.count(c) > 1}))}); list each once")
        return value


def _service_name(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?", value) or "--" in value or not re.search(r"[a-z]", value):
        raise ValueError(f"{value!r} is not a port name Kubernetes accepts: 1 to 15 lowercase letters, digits and hyphens, at least "
                         "one letter, no hyphen first, last or twice in a row (e.g. metrics, amqp, http-admin)")
    return value


PortName = Annotated[str, AfterValidator(_service_name)]
"""A Kubernetes port name (IANA service name): up to 15 lowercase letters, digits and single hyphens, one letter at least."""


class NamedPort(Strict):
    """A port besides the workload's main `port` (metrics, management): callers reach it by its `name`
    (`calls: [{workload, port: <name>}]`), and each target opens it for those callers only."""

    name: PortName
    port: Annotated[int, Field(ge=1, le=65535)]
    protocol: Literal["http", "grpc", "tcp"] = "tcp"


class Requests(Strict):
    """What the scheduler reserves for a container, below its limit: Kubernetes `resources.requests` (default: the
    limit, Guaranteed QoS), Docker `--cpu-shares` (1024 per CPU, as the kubelet derives its cgroup weight) and
    `--memory-reservation` (a soft limit under memory pressure)."""

    cpu: Annotated[float, Field(gt=0, le=1_000_000_000)] | None = None
    memory_mb: Annotated[int, Field(ge=16, le=1_000_000_000)] | None = None


RestartPolicy = Literal["no", "on-failure", "always", "unless-stopped"]
"""Docker's restart policies; Kubernetes restarts the pods of a Deployment or StatefulSet always."""
