"""End-to-end test harness: a throw-away dockerd, locally built images, and an
"apply" that turns recorded pulumi-docker resources into real Docker objects.

* :mod:`e2e.dockerd`  -- :class:`~e2e.dockerd.Dockerd`, a private dockerd in its
  own network namespace, stopped by PID.
* :mod:`e2e.images`   -- ``netopt/gateway:e2e`` and ``netopt/backend:e2e`` built
  from debootstrap'ed Debian bookworm root filesystems (no registry needed).
* :mod:`e2e.apply`    -- :func:`~e2e.apply.apply_docker_resources`.

Everything here needs root and Debian's ``docker.io``, ``debootstrap`` and
``iproute2`` (``e2e/install-deps.sh`` installs them).
"""
