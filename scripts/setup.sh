#!/usr/bin/env bash
# Idempotent set-up that `npm test` and `npm start` run first, one line per step:
#   1. system packages: installs only the missing ones (one apt-get update),
#      Debian 12 or Ubuntu 24.04 (bpftool comes from linux-tools there)
#   2. node modules: `npm ci` only when node_modules is missing or older than
#      package-lock.json (never through a node_modules that is a symlink: npm
#      ci would empty the directory it points to, shared with other checkouts)
#   3. BPF objects: `make -C bpf` (incremental)
#   4. tracefs and bpffs mounted
# Seconds when everything is there. Installing needs root; the rest does not.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s%N)
step() { printf 'setup: %s\n' "$*" >&2; }   # progress on stderr: stdout is the command's (npm start | head)
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# ---- 1. system packages
os_id=unknown
if [ -r /etc/os-release ]; then os_id=$(. /etc/os-release && echo "${ID:-unknown}"); fi
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
arch_inc=/usr/include/$(uname -m)-linux-gnu
need=()
have_cmd clang || need+=(clang)
have_cmd llvm-strip || need+=(llvm)
have_pkg libbpf1 || need+=(libbpf1)
[ -f /usr/include/bpf/libbpf.h ] || need+=(libbpf-dev)
{ [ -f /usr/include/linux/bpf.h ] && [ -d "$arch_inc/asm" ]; } || need+=(linux-libc-dev)
have_cmd ip || need+=(iproute2)
have_cmd ethtool || need+=(ethtool)
have_cmd gcc || need+=(gcc)
have_cmd make || need+=(make)
have_cmd python3 || need+=(python3)
have_cmd pkg-config || need+=(pkg-config)
have_cmd ping || need+=(iputils-ping)      # the lab's ping helper
have_cmd nsenter || need+=(util-linux)
have_cmd nft || need+=(nftables)        # bench xdp_firewall: the nftables comparison
have_cmd iptables-legacy || need+=(iptables)  # bench xdp_firewall: the iptables comparison
have_cmd bpftrace || need+=(bpftrace)     # npm run bench: openat_snoop against bpftrace
{ [ -f "$arch_inc/sys/sdt.h" ] || [ -f /usr/include/sys/sdt.h ]; } || need+=(systemtap-sdt-dev)  # USDT notes in test binaries
# Ubuntu's /usr/sbin/bpftool is a wrapper that fails without the kernel's
# linux-tools package, so ask it to run rather than whether it exists.
if ! bpftool version >/dev/null 2>&1; then
  case "$os_id" in
    ubuntu) need+=(linux-tools-common linux-tools-generic) ;;
    *) need+=(bpftool) ;;
  esac
fi

if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "missing ${need[*]}: run as root (sudo npm test) or: sudo apt-get install -y ${need[*]}"
  have_cmd apt-get || die "missing ${need[*]}, and this is not a Debian/Ubuntu system with apt-get: install them by hand"
  step "installing ${need[*]} ($os_id)"
  apt-get update -qq || die "apt-get update failed"
  if [ "$os_id" = ubuntu ] && [[ " ${need[*]} " == *" linux-tools-generic "* ]]; then
    # The tools of the running kernel, when the archive has them (not for custom kernels).
    k="linux-tools-$(uname -r)"
    if apt-cache show "$k" >/dev/null 2>&1; then need+=("$k"); fi
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || die "apt-get install ${need[*]} failed"
  if ! bpftool version >/dev/null 2>&1; then
    why=""; [ "$os_id" = ubuntu ] && why=" (no linux-tools for kernel $(uname -r)?)"
    step "warning: bpftool still does not run$why; only bpftool itself is affected"
  fi
else
  step "system packages present"
fi

# ---- 2. node modules
stamp=node_modules/.setup-stamp
ref=$stamp
[ -f "$ref" ] || ref=node_modules/.package-lock.json   # written by npm on every install
if [ -L node_modules ]; then
  [ -x node_modules/.bin/tsx ] || die "node_modules links to $(readlink node_modules), which has no tsx: run npm ci there"
  step "node modules: a link to $(readlink node_modules), used as it is"
elif [ ! -d node_modules ] || [ ! -x node_modules/.bin/vitest ] || [ ! -f "$ref" ] || [ package-lock.json -nt "$ref" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
  touch "$stamp"
else
  step "node modules up to date"
fi

# ---- 3. BPF objects
step "make -C bpf"
make -s -C bpf >&2

# ---- 4. tracefs and bpffs
mounted() { grep -qs " $1 $2 " /proc/mounts; }
if mounted /sys/kernel/tracing tracefs && mounted /sys/fs/bpf bpf; then
  step "tracefs and bpffs mounted"
elif [ "$(id -u)" -ne 0 ]; then
  step "not root: tracefs/bpffs not mounted (kernel tests need root)"
else
  ok=1
  mounted /sys/kernel/tracing tracefs || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || { ok=0; step "warning: cannot mount tracefs on /sys/kernel/tracing"; }
  mounted /sys/fs/bpf bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null || { ok=0; step "warning: cannot mount bpffs on /sys/fs/bpf"; }
  [ $ok -eq 0 ] || step "mounted tracefs and bpffs"
fi

step "done in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
