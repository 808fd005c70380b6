#!/usr/bin/env bash
# Sets up cross-building the on-device runtime for ARM (run as root; idempotent): Debian's cross
# toolchain, user-mode qemu, and a sysroot per architecture holding the runtime's dependencies
# from Debian's archive. A sysroot (mmdebstrap --variant=extract) rather than a foreign
# architecture on the host: libxnnpack0 and libpthreadpool0 carry no Multi-Arch field, so their
# arm64 builds would conflict with the amd64 ones LibTorch needs.
# Usage: scripts/setup-cross.sh [arm64|armhf ...]   (default arm64)
# SYSROOT_DIR (default /opt/adascale-sysroot) holds <arch>/.
set -euo pipefail
cd "$(dirname "$0")/.."
archs=("$@")
[ ${#archs[@]} -eq 0 ] && archs=(arm64)
root=${SYSROOT_DIR:-/opt/adascale-sysroot}

host_packages=(qemu-user mmdebstrap cmake ninja-build ccache)
for arch in "${archs[@]}"; do
  case "$arch" in
    arm64) host_packages+=(crossbuild-essential-arm64) ;;
    armhf) host_packages+=(crossbuild-essential-armhf) ;;
    *) echo "setup-cross: unknown architecture '$arch' (known: arm64, armhf)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${host_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-cross: need root to install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-cross: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# what the runtime-only configuration links and tests with
target_packages=(libc6-dev libstdc++-12-dev libxnnpack-dev libpthreadpool-dev libcpuinfo-dev
                 libpng-dev zlib1g-dev nlohmann-json3-dev libgtest-dev libgmock-dev
                 libbenchmark-dev)
list="${target_packages[*]}"
for arch in "${archs[@]}"; do
  dir="$root/$arch"
  # the stamp names the package list: a changed list rebuilds the sysroot
  stamp="$dir/.adascale-packages"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$list" ]; then
    echo "setup-cross: $dir ready"
    continue
  fi
  suite=$(. /etc/os-release && echo "$VERSION_CODENAME")
  mirror=$(awk '/^deb / && !/security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  fi
  mirror=${mirror:-http://deb.debian.org/debian}
  echo "setup-cross: building the $arch sysroot in $dir from $mirror ($suite)"
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$root"
  mmdebstrap --quiet --arch="$arch" --variant=extract --include="${list// /,}" \
    "$suite" "$tmp" "$mirror"
  # absolute symlinks inside the sysroot (e.g. lib*.so -> /lib/...) must resolve within it
  # for the cross linker; Debian 12's merged /usr keeps them relative, checked here
  printf '%s' "$list" >"$tmp/.adascale-packages"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  echo "setup-cross: $dir ready ($(du -sh "$dir" | cut -f1))"
done
