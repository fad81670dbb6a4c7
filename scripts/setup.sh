#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Install what the project needs on a Debian 12 machine: idempotent, quiet when already done.
#   Debian packages (as root), rustup's rust-src component, bindgen-cli 0.69.5 from crates.io.
# Usage: setup.sh [bench|debug]   (bench: also what `make bench` needs for its plot; debug: clang
# and LLVM 19 for the debug kernel)
source "$(dirname "$0")/lib.sh"

DEB_PACKAGES=(
	linux-source-6.12 qemu-system-x86 busybox-static cpio kmod
	clang libclang-dev llvm lld flex bison bc libelf-dev libssl-dev
	gcc make xz-utils zstd pahole python3 rsync
)
[ "${1:-}" = bench ] && DEB_PACKAGES+=(python3-matplotlib)
[ "${1:-}" = debug ] && DEB_PACKAGES+=(clang-19 lld-19 llvm-19)

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

command -v rustup >/dev/null || die "rustup not found: install a rustup toolchain (rustc >= 1.78) first"
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	stage "setup: rustup component add rust-src"
	run_logged "$VIR_LOGDIR/setup-rust-src.log" rustup component add rust-src ||
		die "rustup component add rust-src failed"
fi

if ! bindgen --version 2>/dev/null | grep -q " $VIR_BINDGEN_VERSION\$"; then
	stage "setup: cargo install bindgen-cli@$VIR_BINDGEN_VERSION (about 2 minutes)"
	run_logged "$VIR_LOGDIR/setup-bindgen.log" \
		cargo install --locked --force "bindgen-cli@$VIR_BINDGEN_VERSION" ||
		die "cargo install bindgen-cli@$VIR_BINDGEN_VERSION failed"
fi
