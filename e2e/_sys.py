"""Small system helpers shared by the e2e harness (root only, Linux only)."""
from __future__ import annotations

import ctypes
import os
import subprocess
import time
from pathlib import Path

CLONE_NEWNET = 0x40000000


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise PermissionError(f"{what} needs root (euid 0)")


def _unescape_mountinfo(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_below(path: str | os.PathLike[str]) -> list[str]:
    """Mount points at or below ``path`` in this process's mount namespace."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            mp = _unescape_mountinfo(line.split()[4])
            if mp == base or mp.startswith(base.rstrip("/") + "/"):
                found.append(mp)
    return found


def umount_below(path: str | os.PathLike[str], attempts: int = 5) -> list[str]:
    """Unmount (lazily, deepest first) everything mounted at or below ``path``.

    Returns what is still mounted afterwards (empty on success).
    """
    left: list[str] = []
    for _ in range(attempts):
        left = mounts_below(path)
        if not left:
            return []
        for mp in sorted(set(left), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        time.sleep(0.05)
    return mounts_below(path)


_libc = None


def _setns(fd: int, nstype: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def enter_netns_this_thread(netns_path: str | os.PathLike[str]) -> None:
    """Move the *calling thread* into a network namespace (setns is per thread).

    Sockets created afterwards by this thread live in that namespace and keep
    doing so when used from any other thread. Only call this from a thread you
    own and let it end afterwards (never from the main thread).
    """
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, CLONE_NEWNET)
    finally:
        os.close(fd)


def read_text(path: str | Path) -> str:
    return Path(path).read_text(encoding="utf-8").strip()
