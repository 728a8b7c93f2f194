#!/usr/bin/env bash
# Developer check of the README's claim that both commands work on a fresh Debian 12 machine:
# debootstraps a minimal bookworm into a scratch folder, clones this repository there (committed
# state only) and runs the README's commands inside the chroot. Needs root and debootstrap.
#   scripts/check_fresh_debian.sh [test|main]   (default: test; main runs with small budgets)
# Where HTTPS goes through a proxy with its own CA, the host's CA bundle is handed to pip.
set -euo pipefail
what="${1:-test}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="${NPE_CHROOT:-/tmp/npe-debian12}"
[ "$(id -u)" -eq 0 ] || { echo "check_fresh_debian: needs root" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
[ -x "$root/bin/bash" ] || debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
cp /etc/resolv.conf "$root/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$root/root/host-ca.crt"
mkdir -p "$root/src"
cleanup() { umount -R "$root/dev" "$root/sys" 2>/dev/null || true; umount "$root/proc" "$root/src" 2>/dev/null || true; }
trap cleanup EXIT
mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"; mount --rbind /dev "$root/dev"
mount --bind "$src" "$root/src"
if [ "$what" = main ]; then
  cmd='NPE_CLASSIC_SAMPLES=300000 NPE_MODERN_SAMPLES=100000 scripts/run_main.sh'
else
  cmd='scripts/test.sh'
fi
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
  REQUESTS_CA_BUNDLE=/root/host-ca.crt /bin/bash -ec "
    apt-get update -qq && apt-get install -y -qq git ca-certificates >/dev/null
    git config --global --add safe.directory '*'
    cd /root && rm -rf npe && git clone -q /src npe && cd npe
    echo \"== fresh Debian \$(cat /etc/debian_version); python3: \$(command -v python3 || echo none); nvcc: \$(command -v nvcc || echo none)\"
    $cmd"
