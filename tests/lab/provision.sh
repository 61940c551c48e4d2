#!/usr/bin/env bash
# Provision the kernel lab (tests/lab.rs) from Debian's package registry only.
#
# Idempotent and cached: everything lands under $TUNE_LAB_CACHE
# (default /var/cache/tune-lab); a second run with a warm cache downloads nothing.
#   - installs qemu-system-x86, busybox-static and iproute2 on the host (apt-get)
#     when they are missing;
#   - downloads (never installs) the Debian cloud kernel, linux-image-cloud-amd64 and
#     the linux-image-<version>-cloud-amd64 it depends on, and extracts vmlinuz and
#     /lib/modules with dpkg-deb -x;
#   - downloads (never installs, so the host firewall is untouched) nftables and its
#     libraries and extracts them, for use inside the VM only.
# Writes $TUNE_LAB_CACHE/lab.env, which tests/lab.rs reads to find the kernel.
# Needs root (apt-get install). Changes nothing on the host besides those packages.
set -euo pipefail

cache="${TUNE_LAB_CACHE:-/var/cache/tune-lab}"
mkdir -p "$cache/debs"
export DEBIAN_FRONTEND=noninteractive

log() { printf 'provision: %s\n' "$*" >&2; }

# apt-get update at most once per provisioning, and only when the lists do not
# know the kernel meta package (a fresh container has no lists at all).
updated=0
ensure_lists() {
    if [ "$updated" = 0 ] && ! apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1; then
        log "apt-get update"
        apt-get update -qq
        updated=1
    fi
}

# Host tools: qemu, busybox (static, so it needs no libraries in the initramfs), ip/tc.
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
static_busybox() { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; }
static_busybox || missing+=(busybox-static)
{ command -v tc && command -v ip; } >/dev/null || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
    ensure_lists
    log "apt-get install ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# download PKG...: apt-get download into the cache unless a .deb of it is already there.
download() {
    local pkg
    for pkg in "$@"; do
        if ! compgen -G "$cache/debs/${pkg}_*.deb" >/dev/null; then
            ensure_lists
            log "apt-get download $pkg"
            (cd "$cache/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
        fi
    done
}

# The kernel: the meta package names the real image package in its Depends.
download linux-image-cloud-amd64
meta=$(ls "$cache"/debs/linux-image-cloud-amd64_*.deb | sort -V | tail -n1)
image_pkg=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-image-[0-9][^ ]*-cloud-amd64\).*/\1/p' | head -n1)
[ -n "$image_pkg" ] || { log "cannot find the image package in the Depends of $meta"; exit 1; }
download "$image_pkg"
kver=${image_pkg#linux-image-}
kroot="$cache/kernel-$kver"
if [ ! -f "$kroot/.done" ]; then
    log "extracting $image_pkg"
    rm -rf "$kroot"
    dpkg-deb -x "$(ls "$cache"/debs/"${image_pkg}"_*.deb | sort -V | tail -n1)" "$kroot"
    touch "$kroot/.done"
fi
# The package ships no modules.dep (depmod runs at install time); lab.rs resolves
# module dependencies from each module's own .modinfo instead.
[ -f "$kroot/boot/vmlinuz-$kver" ] && [ -d "$kroot/lib/modules/$kver/kernel" ] || {
    log "$image_pkg has no vmlinuz or modules"; exit 1; }

# VM-only userland: nft and its libraries (the host's glibc is reused, see lab.rs).
userland_pkgs=(nftables libnftables1 libnftnl11 libjansson4 libgmp10 libedit2 libxtables12 libmnl0 libbsd0 libmd0)
download "${userland_pkgs[@]}"
uroot="$cache/userland"
if [ ! -f "$uroot/.done" ]; then
    log "extracting ${userland_pkgs[*]}"
    rm -rf "$uroot"
    for pkg in "${userland_pkgs[@]}"; do
        dpkg-deb -x "$(ls "$cache"/debs/"${pkg}"_*.deb | sort -V | tail -n1)" "$uroot"
    done
    touch "$uroot/.done"
fi

cat >"$cache/lab.env.tmp" <<ENV
TUNE_LAB_KERNEL=$kroot/boot/vmlinuz-$kver
TUNE_LAB_MODULES=$kroot/lib/modules/$kver
TUNE_LAB_USERLAND=$uroot
TUNE_LAB_QEMU=$(command -v qemu-system-x86_64)
TUNE_LAB_BUSYBOX=/bin/busybox
ENV
mv "$cache/lab.env.tmp" "$cache/lab.env"
log "ready: $cache/lab.env (kernel $kver)"
