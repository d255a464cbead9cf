"""Build the e2e images locally, without any image registry.

Two images are built into a (test) dockerd:

``netopt/gateway:e2e``
    Debian bookworm (debootstrap ``--variant=minbase``) plus Debian's ``nginx``, its stream module
    (``libnginx-mod-stream``, at ``STREAM_MODULE``: tcp service proxies load it) and ``curl`` (the default
    healthcheck of the gateway and the service proxies),
    prepared to run as a non-root user with all capabilities dropped and a
    read-only root: the compiled-in paths that nginx writes (pid file, temp
    directories, logs) point into ``/tmp`` (mount a tmpfs there) or to
    stdout/stderr. The deploy uploads its own ``/etc/nginx/nginx.conf``; the
    built-in one listens on 8080 and answers 200. ``CMD nginx -g 'daemon off;'``.

``netopt/backend:e2e``
    The same base plus ``python3`` (and ``wget``, for the workloads' default
    healthcheck), with the repo's ``testbed/backend.py``
    copied in at
    build time as ``/opt/netopt/backend.py``. The default command
    ``/opt/netopt/run-backend`` runs
    ``python3 /opt/netopt/backend.py --listen 0.0.0.0:${PORT:-8080}
    --name ${NETOPT_REPLICA:-<hostname>}`` (the Docker target sets both env vars).

How: ``debootstrap --variant=minbase --include=<packages> bookworm <dir>
<mirror>``, a few file edits (below), ``tar --numeric-owner`` into a cached
tarball, then ``docker import`` (API ``POST /images/create``) with ``CMD``/
``ENV``/``LABEL`` changes; the backend script is added with the legacy
builder (API ``POST /build``: ``FROM`` + ``COPY``, no ``RUN``).

Cache: ``$NETOPT_E2E_CACHE`` (default ``/var/cache/netopt-e2e``) holds
``rootfs-<name>-<key>.tar`` and debootstrap's ``.deb`` cache (``debs/``).
The key hashes the suite, mirror, variant, architecture, package list and the
source of the customisation code, so changing any of them rebuilds.

CLI::

    python -m e2e.images rootfs        # only make/refresh the cached tarballs
    python -m e2e.images build         # start a throw-away dockerd and build both images
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e._sys import require_root, umount_below

DEFAULT_CACHE = "/var/cache/netopt-e2e"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
VARIANT = "minbase"

GATEWAY_IMAGE = "netopt/gateway:e2e"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"  # where libnginx-mod-stream puts it
BACKEND_IMAGE = "netopt/backend:e2e"
BACKEND_BASE_IMAGE = "netopt/backend-base:e2e"
LABEL_KEY = "org.netopt.e2e.rootfs-key"
LABEL_SRC = "org.netopt.e2e.backend-sha256"

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
REPO_ROOT = Path(__file__).resolve().parent.parent

Log = Callable[[str], None]


def _stderr_log(msg: str) -> None:
    print(f"[e2e.images] {msg}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    return Path(os.environ.get("NETOPT_E2E_CACHE") or DEFAULT_CACHE)


def mirror() -> str:
    return os.environ.get("NETOPT_E2E_MIRROR") or DEFAULT_MIRROR


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], check=True,
                          capture_output=True, text=True).stdout.strip()


# ----------------------------------------------------------------------------
# Root filesystem recipes
# ----------------------------------------------------------------------------

# The http-level lines every nginx.conf for the gateway image needs: no access log file, and every temp
# directory nginx writes under /tmp (the tmpfs of the read-only root).
NGINX_HTTP_WRITABLE_PATHS = """\
    access_log off;
    client_body_temp_path /tmp/client_body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
"""

DEFAULT_NGINX_CONF = """\
# netopt e2e gateway image: built-in config (the deploy uploads its own).
# Non-root friendly: every path nginx writes is under /tmp (a tmpfs) or stderr.
worker_processes 2;
pid /tmp/nginx.pid;
error_log stderr warn;
include /etc/nginx/modules-enabled/*.conf;
events { worker_connections 1024; }
http {
""" + NGINX_HTTP_WRITABLE_PATHS + """\
    server {
        listen 8080;
        location / { return 200 "netopt gateway: built-in config\\n"; }
    }
}
"""

RUN_BACKEND = """\
#!/bin/sh
# netopt e2e backend image entry point.
set -e
name="${NETOPT_REPLICA:-$(cat /etc/hostname 2>/dev/null || echo backend)}"
exec python3 /opt/netopt/backend.py --listen "0.0.0.0:${PORT:-${NETOPT_PORT:-8080}}" --name "$name" "$@"
"""


def _strip_rootfs(root: Path) -> None:
    """Drop what a container never needs (apt lists, docs, caches)."""
    for rel in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man",
                "usr/share/info", "usr/share/locale", "var/cache/debconf/templates.dat-old",
                "var/log/apt", "var/log/dpkg.log", "var/log/bootstrap.log",
                "debootstrap"):
        p = root / rel
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
            if rel in ("var/lib/apt/lists", "var/cache/apt"):
                (p / "partial" if rel.endswith("lists") else p / "archives" / "partial").mkdir(
                    parents=True, exist_ok=True)
    # The host's resolver config is no business of the image (docker bind-mounts its own).
    for rel in ("etc/resolv.conf", "etc/hostname"):
        p = root / rel
        if p.exists() or p.is_symlink():
            p.unlink()
            p.write_text("")


def _customize_gateway(root: Path) -> None:
    """nginx as any non-root user on a read-only root with a tmpfs on /tmp."""
    etc = root / "etc/nginx"
    for rel in ("sites-enabled/default",):
        (etc / rel).unlink(missing_ok=True)
    (etc / "nginx.conf").write_text(DEFAULT_NGINX_CONF)
    # Compiled-in paths (used before/without a config that overrides them):
    #   error log /var/log/nginx/error.log, temp dirs /var/lib/nginx/*, pid /run/nginx.pid.
    logs = root / "var/log/nginx"
    if logs.is_dir() and not logs.is_symlink():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    (logs / "error.log").symlink_to("/dev/stderr")
    (logs / "access.log").symlink_to("/dev/stdout")
    lib = root / "var/lib/nginx"
    if lib.is_dir() and not lib.is_symlink():
        shutil.rmtree(lib)
    lib.unlink(missing_ok=True)
    lib.symlink_to("/tmp")  # nginx mkdirs /var/lib/nginx/{body,proxy,...} -> /tmp/...
    pid = root / "run/nginx.pid"
    pid.unlink(missing_ok=True)
    pid.symlink_to("/tmp/nginx.pid")


def _customize_backend(root: Path) -> None:
    """python3 only; the backend script itself is added at image build time."""
    (root / "opt/netopt").mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class RootfsRecipe:
    name: str
    packages: tuple[str, ...]
    customize: Callable[[Path], None]

    def key(self, arch: str | None = None) -> str:
        material = {
            "suite": SUITE, "variant": VARIANT, "mirror": mirror(), "arch": arch or _arch(),
            "packages": sorted(self.packages),
            "customize": inspect.getsource(self.customize),
            "strip": inspect.getsource(_strip_rootfs),
            "extra": DEFAULT_NGINX_CONF if self.customize is _customize_gateway else "",
        }
        blob = json.dumps(material, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:20]

    def tarball(self, cache: Path | None = None) -> Path:
        return (cache or cache_dir()) / f"rootfs-{self.name}-{self.key()}.tar"


# libnginx-mod-stream: Debian builds the stream module (tcp service proxies) as a dynamic module in its own package;
# the e2e stacks load it with `gateway.stream_module` (STREAM_MODULE).
GATEWAY_ROOTFS = RootfsRecipe("gateway", ("nginx", "libnginx-mod-stream", "curl"), _customize_gateway)
BACKEND_ROOTFS = RootfsRecipe("backend", ("python3", "wget"), _customize_backend)
RECIPES = (GATEWAY_ROOTFS, BACKEND_ROOTFS)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_rootfs(recipe: RootfsRecipe, *, cache: Path | None = None, force: bool = False,
                 log: Log = _stderr_log) -> Path:
    """Return the cached rootfs tarball for ``recipe``, debootstrapping it if needed."""
    require_root("debootstrap")
    cache = (cache or cache_dir()).resolve()
    out = recipe.tarball(cache)
    with _locked(cache / f".lock-{recipe.name}"):
        if out.exists() and not force:
            log(f"rootfs {recipe.name}: cached {out}")
            return out
        if shutil.which("debootstrap") is None:
            raise RuntimeError("debootstrap not found: run e2e/install-deps.sh (apt-get install debootstrap)")
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".build-{recipe.name}-", dir=cache))
        target = work / "rootfs"
        t0 = time.monotonic()
        try:
            cmd = ["debootstrap", f"--variant={VARIANT}", "--components=main",
                   f"--include={','.join(recipe.packages)}", f"--cache-dir={debs}",
                   SUITE, str(target), mirror()]
            log(f"rootfs {recipe.name}: {' '.join(cmd)}")
            with open(work / "debootstrap.out", "wb") as out_f:
                rc = subprocess.run(cmd, stdout=out_f, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, check=False).returncode
            if rc != 0:
                tail = (work / "debootstrap.out").read_text(errors="replace")[-3000:]
                dlog = target / "debootstrap/debootstrap.log"
                if dlog.exists():
                    tail += "\n--- debootstrap.log ---\n" + dlog.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"debootstrap failed (exit {rc}):\n{tail}")
            t1 = time.monotonic()
            umount_below(target)  # debootstrap unmounts proc/sys itself; be sure
            recipe.customize(target)
            _strip_rootfs(target)
            tmp = out.with_suffix(".tar.part")
            subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(target), "-cf", str(tmp),
                            "--exclude=./dev/*", "--exclude=./proc/*", "--exclude=./sys/*", "."],
                           check=True)
            os.replace(tmp, out)
            log(f"rootfs {recipe.name}: debootstrap {t1 - t0:.1f}s, total {time.monotonic() - t0:.1f}s, "
                f"{out.stat().st_size / 1e6:.1f} MB -> {out}")
            for old in cache.glob(f"rootfs-{recipe.name}-*.tar"):
                if old != out:
                    old.unlink(missing_ok=True)
            return out
        finally:
            left = umount_below(work)
            if left:
                raise RuntimeError(f"could not unmount {left}; not removing {work}")
            shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------

def _labels_of(client: Any, ref: str) -> dict[str, str] | None:
    import docker.errors

    try:
        img = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return None
    return dict(img.labels or {})


def _check_stream(text: Any) -> None:
    # /images/create and /build answer with a JSON stream; errors come inside it.
    if isinstance(text, (bytes, str)):
        lines = text.decode() if isinstance(text, bytes) else text
        for line in lines.splitlines():
            line = line.strip()
            if line.startswith("{"):
                doc = json.loads(line)
                if "error" in doc or "errorDetail" in doc:
                    raise RuntimeError(f"docker: {doc}")


def import_rootfs(client: Any, tarball: Path, ref: str, changes: list[str]) -> str:
    repo, _, tag = ref.rpartition(":")
    with open(tarball, "rb") as f:
        res = client.api.import_image(src=f, repository=repo, tag=tag, changes=changes)
    _check_stream(res)
    return str(client.images.get(ref).id)


def backend_source(repo_root: Path | None = None) -> Path:
    """``testbed/backend.py``, the loopback backend the tests run too."""
    return (repo_root or REPO_ROOT) / "testbed" / "backend.py"


def _context_tar(files: dict[str, tuple[bytes, int]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_images(client: Any, *, repo_root: Path | None = None, cache: Path | None = None,
                 log: Log = _stderr_log) -> dict[str, str]:
    """Build (or reuse) both images in the dockerd behind ``client``; return name -> image id."""
    t0 = time.monotonic()
    gw_tar = build_rootfs(GATEWAY_ROOTFS, cache=cache, log=log)
    be_tar = build_rootfs(BACKEND_ROOTFS, cache=cache, log=log)
    t1 = time.monotonic()
    gw_key, be_key = GATEWAY_ROOTFS.key(), BACKEND_ROOTFS.key()

    ids: dict[str, str] = {}
    if (_labels_of(client, GATEWAY_IMAGE) or {}).get(LABEL_KEY) != gw_key:
        import_rootfs(client, gw_tar, GATEWAY_IMAGE, [
            f"ENV {PATH_ENV}",
            "EXPOSE 8080/tcp",
            f"LABEL {LABEL_KEY}={gw_key}",
            'CMD ["nginx", "-g", "daemon off;"]',
        ])
    ids["gateway"] = str(client.images.get(GATEWAY_IMAGE).id)

    src = backend_source(repo_root)
    code = src.read_bytes()
    src_sha = hashlib.sha256(code + RUN_BACKEND.encode()).hexdigest()[:20]
    labels = _labels_of(client, BACKEND_IMAGE) or {}
    if labels.get(LABEL_KEY) != be_key or labels.get(LABEL_SRC) != src_sha:
        if (_labels_of(client, BACKEND_BASE_IMAGE) or {}).get(LABEL_KEY) != be_key:
            import_rootfs(client, be_tar, BACKEND_BASE_IMAGE,
                          [f"ENV {PATH_ENV}", f"LABEL {LABEL_KEY}={be_key}"])
        dockerfile = "\n".join([
            f"FROM {BACKEND_BASE_IMAGE}",
            "COPY backend.py /opt/netopt/backend.py",
            "COPY run-backend /opt/netopt/run-backend",
            "ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1",
            "EXPOSE 8080/tcp",
            f"LABEL {LABEL_SRC}={src_sha} org.netopt.e2e.backend-source={src.name}",
            'CMD ["/opt/netopt/run-backend"]',
            "",
        ]).encode()
        ctx = _context_tar({"Dockerfile": (dockerfile, 0o644), "backend.py": (code, 0o755),
                            "run-backend": (RUN_BACKEND.encode(), 0o755)})
        client.images.build(fileobj=ctx, custom_context=True, tag=BACKEND_IMAGE, rm=True,
                            forcerm=True, pull=False)
    ids["backend"] = str(client.images.get(BACKEND_IMAGE).id)
    log(f"images: rootfs {t1 - t0:.1f}s, import/build {time.monotonic() - t1:.1f}s "
        f"(backend script: {src})")
    return ids


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.images", description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["rootfs", "build"])
    p.add_argument("--force", action="store_true", help="rebuild the rootfs tarballs")
    ns = p.parse_args(argv)
    t0 = time.monotonic()
    for r in RECIPES:
        build_rootfs(r, force=ns.force)
    if ns.what == "build":
        from e2e.dockerd import Dockerd

        d = Dockerd()
        with d as client:
            _stderr_log(f"dockerd ready in {d.started_in:.2f}s")
            print(json.dumps(build_images(client), indent=2))
    _stderr_log(f"done in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
