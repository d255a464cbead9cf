#!/bin/sh
# Install what the e2e stage needs on a fresh Debian 12 machine (run as root; idempotent).
#   docker.io   dockerd + containerd + runc + docker-proxy (Debian's, 20.10)
#   debootstrap builds the image root filesystems from the Debian mirror
#   iproute2    ip netns (the daemon runs in its own network namespace)
#   util-linux  nsenter; tar, xz: image tarballs
#   libcap2-bin capsh: decodes the capability masks read inside the containers
# Nothing is started here: e2e/dockerd.py starts a private dockerd per test session.
set -eu
pkgs="docker.io debootstrap iproute2 util-linux tar ca-certificates libcap2-bin"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "e2e/install-deps.sh: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Keep docker.io's postinst from starting the *system* dockerd (it would touch the host's
    # iptables and ip_forward); the e2e stage never uses it. policy-rc.d "101" = action forbidden.
    added_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        added_policy=1
    fi
    rc=0
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } || rc=$?
    [ -z "$added_policy" ] || rm -f /usr/sbin/policy-rc.d
    [ "$rc" -eq 0 ] || exit "$rc"
fi
for tool in dockerd containerd runc docker-proxy debootstrap ip nsenter capsh; do
    command -v "$tool" >/dev/null 2>&1 || { echo "e2e/install-deps.sh: $tool still missing" >&2; exit 1; }
done
mkdir -p "${NETOPT_E2E_CACHE:-/var/cache/netopt-e2e}"
echo "e2e/install-deps.sh: ok ($(dockerd --version))"
