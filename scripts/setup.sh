#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what the project needs on a Debian 12 machine: idempotent, quiet when already done.
#   Debian packages (as root), rustup's rust-src component, bindgen-cli 0.69.5 from crates.io.
#   DPDK 22.11 (bookworm): the tests run its unmodified dpdk-testpmd (package dpdk-dev) inside the
#   guest with the virtio-net PMD (librte-net-virtio23, a plugin Debian does not pull in by itself)
#   over the backend (tests/dpdk_test.c, Documentation/dpdk.rst).
#   QEMU comes from bookworm-backports (10.0): the tests run it inside the guest as a VFIO user, and
#   VFIO migration v2 (the only one 6.12 has) needs QEMU >= 8.0; bookworm's own is 7.2.
#   Another kernel line (VIR_KERNEL or KERNEL=7.3): its linux-source-<line> .deb from trixie-backports,
#   downloaded with an apt state of its own in the cache (the machine's apt sources and installed
#   packages are untouched) and unpacked there; bindgen-cli 0.72.1 into the cache; libclang 19.
#   uuid-dev: the static libuuid the upstream VFIO selftests link (scripts/build-vfio-selftests.sh).
# Usage: setup.sh [bench|debug|dkms]   (bench: also what `make bench` needs for its plot; debug: clang
# and LLVM 19 for the debug kernel; dkms: DKMS, for `make install-check`)
source "$(dirname "$0")/lib.sh"

DEB_PACKAGES=(
	linux-source-6.12 busybox-static cpio kmod
	clang libclang-dev llvm lld flex bison bc libelf-dev libssl-dev
	gcc make xz-utils zstd pahole python3 rsync uuid-dev
	dpdk dpdk-dev librte-net-virtio23 librte-net-null23 librte-mempool-ring23
)
[ "${1:-}" = bench ] && DEB_PACKAGES+=(python3-matplotlib)
[ "${1:-}" = debug ] && DEB_PACKAGES+=(clang-19 lld-19 llvm-19)
[ "${1:-}" = dkms ] && DEB_PACKAGES+=(dkms)
# The 7.x lines' bindgen needs libclang >= 17 (Debian 12 has 19 beside its default 14).
[ "$VIR_KERNEL" = 6.12 ] || DEB_PACKAGES+=(libclang1-19)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	stage "setup: installing Debian packages: ${missing[*]}"
	[ "$(id -u)" = 0 ] || die "need root to apt-get install: ${missing[*]}"
	log=$VIR_LOGDIR/setup-apt.log
	export DEBIAN_FRONTEND=noninteractive
	run_logged "$log" apt-get update ||
		die "apt-get update failed (see $log)"
	run_logged "$log.install" apt-get install -y --no-install-recommends "${missing[@]}" ||
		die "could not install: ${missing[*]} (see $log.install)"
fi

# QEMU >= 8 from bookworm-backports. The suite's mirror is the one this machine already uses for
# bookworm (read from its apt sources), so no host is named here.
QEMU_MIN_MAJOR=8
qemu_ok() {
	local v
	v=$(dpkg-query -W -f='${Status} ${Version}' qemu-system-x86 2>/dev/null) || return 1
	case $v in *'ok installed'*) ;; *) return 1 ;; esac
	v=${v##* }; v=${v#*:}
	[ "${v%%.*}" -ge "$QEMU_MIN_MAJOR" ]
}
bookworm_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '/^$/ { u = "" } /^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u { print u; exit }' "$f"
	done | head -n1
	grep -hE '^deb +(\[[^]]*\] +)?[a-z]+://[^ ]+ +bookworm +' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -E 's/^deb +(\[[^]]*\] +)?([^ ]+).*/\2/' | head -n1
	return 0
}
if ! qemu_ok; then
	[ "$(id -u)" = 0 ] || die "need root to install qemu-system-x86 >= $QEMU_MIN_MAJOR from bookworm-backports"
	list=/etc/apt/sources.list.d/vir-bookworm-backports.sources
	if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		mirror=$(bookworm_mirror | head -n1 || true)
		[ -n "$mirror" ] || die "no bookworm apt source found to derive the backports mirror from"
		stage "setup: adding bookworm-backports from $mirror"
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$mirror" >"$list"
	fi
	stage "setup: installing qemu-system-x86 from bookworm-backports"
	export DEBIAN_FRONTEND=noninteractive
	run_logged "$VIR_LOGDIR/setup-apt-qemu.log" apt-get update ||
		die "apt-get update failed (see $VIR_LOGDIR/setup-apt-qemu.log)"
	run_logged "$VIR_LOGDIR/setup-apt-qemu.log.install" apt-get install -y --no-install-recommends \
		-t bookworm-backports qemu-system-x86 ||
		die "could not install qemu-system-x86 from bookworm-backports (see $VIR_LOGDIR/setup-apt-qemu.log.install)"
	qemu_ok || die "qemu-system-x86 is still older than $QEMU_MIN_MAJOR after installing from bookworm-backports"
fi

command -v rustup >/dev/null || die "rustup not found: install a rustup toolchain (rustc >= 1.78) first"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	stage "setup: rustup component add rust-src"
	run_logged "$VIR_LOGDIR/setup-rust-src.log" rustup component add rust-src ||
		die "rustup component add rust-src failed"
fi

# A kernel line from trixie-backports: its source package only. The apt state lives in the cache
# (lists, archives, a sources file naming only trixie-backports on this machine's Debian mirror), so
# nothing else from trixie can be installed by it.
# Every line needs 7.3's source: the upstream VFIO selftests (new in 6.18) are built from it for
# every guest (scripts/build-vfio-selftests.sh). So it is fetched for 6.12 too.
VIR_KERNEL_MAIN=$VIR_KERNEL
[ "$VIR_KERNEL" = 6.12 ] && VIR_KERNEL=7.3 VIR_KERNEL_PKG=linux-source-7.3
if [ -z "$(kernel_tarball)" ]; then
	mirror=$(bookworm_mirror | head -n1 || true)
	[ -n "$mirror" ] || die "no bookworm apt source found to derive the trixie-backports mirror from"
	apt_dir=$VIR_CACHE/apt-trixie-backports
	mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/sources.list.d" \
		"$apt_dir/preferences.d"
	printf 'Types: deb\nURIs: %s\nSuites: trixie-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$mirror" >"$apt_dir/sources.list.d/trixie-backports.sources"
	apt_opts=(-o Dir::Etc::sourcelist=/dev/null -o "Dir::Etc::sourceparts=$apt_dir/sources.list.d"
		-o "Dir::Etc::preferencesparts=$apt_dir/preferences.d" -o "Dir::State::Lists=$apt_dir/lists"
		-o "Dir::Cache=$apt_dir" -o Dir::Cache::archives="$apt_dir/archives"
		-o Dir::State::status=/dev/null -o APT::Architecture=amd64)
	stage "setup: downloading $VIR_KERNEL_PKG from trixie-backports ($mirror)"
	log=$VIR_LOGDIR/setup-apt-$VIR_KERNEL_PKG.log
	run_logged "$log" apt-get "${apt_opts[@]}" update || die "apt-get update of trixie-backports failed (see $log)"
	version=$(apt-cache "${apt_opts[@]}" show "$VIR_KERNEL_PKG" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }')
	[ -n "$version" ] || die "$VIR_KERNEL_PKG is not in trixie-backports"
	tmp=$(mktemp -d "$VIR_CACHE/deb.XXXXXX")
	(cd "$tmp" && run_logged "$log.download" apt-get "${apt_opts[@]}" download "$VIR_KERNEL_PKG=$version") ||
		die "could not download $VIR_KERNEL_PKG $version (see $log.download)"
	rm -rf "$(kernel_debdir)"
	mkdir -p "$(kernel_debdir)"
	dpkg-deb -x "$tmp"/"$VIR_KERNEL_PKG"_*.deb "$(kernel_debdir)"
	rm -rf "$tmp"
	echo "$version" >"$(kernel_debdir).version"
	[ -n "$(kernel_tarball)" ] || die "$VIR_KERNEL_PKG $version has no source tarball"
	info "setup: $VIR_KERNEL_PKG $version in $(kernel_debdir)"
fi
VIR_KERNEL=$VIR_KERNEL_MAIN VIR_KERNEL_PKG=linux-source-$VIR_KERNEL_MAIN
if [ "$VIR_KERNEL" != 6.12 ] && ! "$(bindgen_new)" --version 2>/dev/null | grep -q " $VIR_BINDGEN_NEW_VERSION\$"; then
	stage "setup: cargo install bindgen-cli@$VIR_BINDGEN_NEW_VERSION into $VIR_CACHE/tools (about 2 minutes)"
	run_logged "$VIR_LOGDIR/setup-bindgen-new.log" cargo install --locked --force \
		--root "$VIR_CACHE/tools/bindgen-$VIR_BINDGEN_NEW_VERSION" "bindgen-cli@$VIR_BINDGEN_NEW_VERSION" ||
		die "cargo install bindgen-cli@$VIR_BINDGEN_NEW_VERSION failed"
fi

if ! bindgen --version 2>/dev/null | grep -q " $VIR_BINDGEN_VERSION\$"; then
	stage "setup: cargo install bindgen-cli@$VIR_BINDGEN_VERSION (about 2 minutes)"
	run_logged "$VIR_LOGDIR/setup-bindgen.log" \
		cargo install --locked --force "bindgen-cli@$VIR_BINDGEN_VERSION" ||
		die "cargo install bindgen-cli@$VIR_BINDGEN_VERSION failed"
fi
