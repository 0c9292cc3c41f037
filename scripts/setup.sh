#!/usr/bin/env bash
# Idempotent set-up that `npm test` runs first: system packages (only the
# missing ones), node modules (only when the lock file changed), BPF objects
# (make is incremental), and the tracefs/bpffs mounts. Seconds when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf 'setup: %s\n' "$*"; }

. /etc/os-release 2>/dev/null || true
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
have_cmd clang || need+=(clang)
have_cmd llvm-strip || have_cmd llvm-objdump || need+=(llvm)
have_pkg libbpf1 || need+=(libbpf1)
[ -f /usr/include/bpf/libbpf.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
have_cmd ip || need+=(iproute2)
have_cmd ethtool || need+=(ethtool)
have_cmd gcc || need+=(gcc)
have_cmd make || need+=(make)
have_cmd python3 || need+=(python3)
have_cmd nsenter || need+=(util-linux)
have_cmd ping || need+=(iputils-ping)
if ! have_cmd bpftool; then
  if [ "${ID:-}" = ubuntu ]; then need+=(linux-tools-common linux-tools-generic); else need+=(bpftool); fi
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  step "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  step "system packages present"
fi

stamp=node_modules/.setup-stamp
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
else
  step "node modules up to date"
fi

step "make -C bpf"
make -s -C bpf

if [ "$(id -u)" -eq 0 ]; then
  if ! grep -qs ' /sys/kernel/tracing tracefs ' /proc/mounts; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null && step "mounted tracefs" || true
  fi
  if ! grep -qs ' /sys/fs/bpf bpf ' /proc/mounts; then
    mount -t bpf bpf /sys/fs/bpf 2>/dev/null && step "mounted bpffs" || true
  fi
fi
step "done"
