#!/usr/bin/env bash
# What the Docker tier (`make test-docker`) and `make sam-demo` need, from Debian's packages alone: Docker's
# engine, arm64 emulation (qemu, binfmt_misc), and the stand-in arm64 Lambda image (`make sam-image`).
# Run as root (CI runs it as root); each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
command -v update-binfmts >/dev/null || need+=(binfmt-support)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
fi

# arm64 programs run under qemu: binfmt_misc mounted, the aarch64 handler on
[ -e /proc/sys/fs/binfmt_misc/register ] || as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || as_root update-binfmts --enable qemu-aarch64

# Docker's engine: this machine has no init system to start it, and its network no NAT (containers talk to
# this machine's own servers only, on the bridge)
if ! docker info >/dev/null 2>&1; then
  as_root sh -c 'nohup dockerd --iptables=false --ip-masq=false >/var/log/dockerd.log 2>&1 &'
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null
fi

as_root env "PATH=$PATH" make sam-image
