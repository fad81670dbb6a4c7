# SPDX-License-Identifier: GPL-2.0
# Shared shell helpers for the vfio-iommu-rust scripts: stage lines, logging, cache paths.
# Sourced, not executed.

set -euo pipefail

VIR_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VIR_CACHE=${VIR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vfio-iommu-rust}
VIR_LOGDIR=${VIR_LOGDIR:-$VIR_ROOT/out/logs}
mkdir -p "$VIR_CACHE" "$VIR_LOGDIR"

# The kernel line we build and test against (`make check KERNEL=7.3`): 6.12 (the default, Debian's
# linux-source-6.12 package, any 6.12.y) or 7.3 (linux-source-7.3 from trixie-backports, fetched by
# setup.sh into the cache and never installed). Each line has its own cached kernel build.
VIR_KERNEL=${VIR_KERNEL:-${KERNEL:-6.12}}
case $VIR_KERNEL in
6.12 | 7.3) ;;
*) printf 'error: KERNEL=%s: the supported kernel lines are 6.12 and 7.3\n' "$VIR_KERNEL" >&2; exit 1 ;;
esac
export VIR_KERNEL
VIR_KERNEL_PKG=linux-source-$VIR_KERNEL
# bindgen-cli: 6.12 takes 0.69.5 (on PATH, with the system's libclang 14); 7.3 needs bindgen >= 0.71.1
# with libclang >= 17, so it gets its own bindgen in the cache, run with LLVM 19's libclang.
VIR_BINDGEN_VERSION=0.69.5
VIR_BINDGEN_NEW_VERSION=0.72.1
VIR_LIBCLANG_NEW=/usr/lib/llvm-19/lib

export PATH="$HOME/.cargo/bin:$PATH"

stage() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# run_logged LOG CMD...: run CMD with all output in LOG; on failure show the log's tail and fail.
run_logged() {
	local log=$1; shift
	if ! "$@" >"$log" 2>&1; then
		printf 'error: command failed: %s\n' "$*" >&2
		printf '       full log: %s\n       last 40 lines:\n' "$log" >&2
		tail -n 40 "$log" | sed 's/^/       | /' >&2
		return 1
	fi
}

# Where the line's source package lives: 6.12 is installed by apt (/usr/src); 7.3's .deb is only
# unpacked into the cache (setup.sh), with its version beside it.
kernel_debdir() { printf '%s/deb/%s' "$VIR_CACHE" "$VIR_KERNEL_PKG"; }

# The tarball of the line's kernel source.
kernel_tarball() {
	local dir=/usr/src
	[ "$VIR_KERNEL" = 6.12 ] || dir=$(kernel_debdir)/usr/src
	ls "$dir/$VIR_KERNEL_PKG".tar.* 2>/dev/null | head -n1
}

# The full version of the line's kernel source, e.g. 6.12.117 or 7.3.4.
kernel_version() {
	[ -n "$(kernel_tarball)" ] || die "$VIR_KERNEL_PKG is not there (run: make setup KERNEL=$VIR_KERNEL)"
	if [ "$VIR_KERNEL" = 6.12 ]; then
		dpkg-query -W -f='${Version}' "$VIR_KERNEL_PKG" | sed -E 's/-.*//'
	else
		sed -E 's/-.*//' "$(kernel_debdir).version"
	fi
}

rustc_version() { rustc --version | awk '{print $2}'; }

# Bump when build-kernel.sh changes what it produces, to invalidate cached kernels.
VIR_KERNEL_BUILD_REV=1

# The test kernel variant: "" (the default kernel, GCC) or "debug" (KASAN, lockdep, kmemleak,
# fault injection; clang/LLVM 19, which Rust needs for KASAN).
VIR_VARIANT=${VIR_VARIANT:-}

# Config fragments of the variant, in merge order.
kernel_fragments() {
	echo "$VIR_ROOT/scripts/kernel.config"
	[ -f "$VIR_ROOT/scripts/kernel-$VIR_KERNEL.config" ] && echo "$VIR_ROOT/scripts/kernel-$VIR_KERNEL.config"
	[ "$VIR_VARIANT" = debug ] && echo "$VIR_ROOT/scripts/kernel-debug.config"
	[ "$VIR_VARIANT" = debug ] || echo "$VIR_ROOT/scripts/kernel-bench.config"
	return 0
}

# Extra make arguments of the variant (the compiler); also needed to build modules against it.
kernel_make_flags() {
	[ "$VIR_VARIANT" = debug ] && echo "LLVM=-19"
	[ "$VIR_KERNEL" = 6.12 ] || echo "BINDGEN=$(bindgen_new) LIBCLANG_PATH=$VIR_LIBCLANG_NEW"
	return 0
}

# The newer bindgen of the 7.x lines (setup.sh installs it).
bindgen_new() { printf '%s/tools/bindgen-%s/bin/bindgen' "$VIR_CACHE" "$VIR_BINDGEN_NEW_VERSION"; }

# Cache key of the kernel build: kernel version, config fragments, rustc version (and the build
# rev); the debug variant's key also names it and its clang.
kernel_key() {
	local h
	h=$({ cat $(kernel_fragments); echo "rev $VIR_KERNEL_BUILD_REV"; } | sha256sum | cut -c1-12)
	if [ "$VIR_VARIANT" = debug ]; then
		printf '%s-debug-%s-rustc%s-clang19' "$(kernel_version)" "$h" "$(rustc_version)"
	else
		printf '%s-%s-rustc%s' "$(kernel_version)" "$h" "$(rustc_version)"
	fi
}

# The make arguments a kernel build directory needs for module builds (LLVM=-19 for the debug one).
kdir_make_flags() { cat "$1/.vir-make-flags" 2>/dev/null || true; }

# build_module_and_guest KDIR [ARGS...]: our module against KDIR (with its make flags and ARGS,
# e.g. CLIPPY=1), then the guest (tests, vendor driver, initramfs).
build_module_and_guest() {
	local kdir=$1 flags
	shift
	flags=$(echo $(kdir_make_flags "$kdir") "$@")
	stage "module: building against $kdir${flags:+ ($flags)}"
	run_logged "$VIR_LOGDIR/module-build.log" bash "$VIR_ROOT/scripts/build-module.sh" "$kdir" \
		"$VIR_ROOT" "$@" ||
		die "module build failed"
	bash "$VIR_ROOT/scripts/build-guest.sh" "$kdir"
}

kernel_srcdir() { printf '%s/src/linux-%s' "$VIR_CACHE" "$(kernel_version)"; }

# Unpacks the line's source tarball into kernel_srcdir (replacing what is there), through a
# temporary directory in the cache so that an interrupted unpack leaves no half tree behind.
unpack_kernel_src() {
	local src tmp
	src=$(kernel_srcdir)
	mkdir -p "$VIR_CACHE/src"
	tmp=$(mktemp -d "$VIR_CACHE/src/unpack.XXXXXX")
	tar -C "$tmp" -xf "$(kernel_tarball)"
	rm -rf "$src"
	mv "$tmp/$VIR_KERNEL_PKG" "$src"
	rmdir "$tmp"
}

# The kernel tree the upstream VFIO selftests (tools/testing/selftests/vfio, new in 6.18) are built
# from: the newest of the cached trees $VIR_CACHE/src/linux-<version> (setup.sh unpacks them) that has
# them, or $VIR_VFIO_SELFTESTS_SRC. Prints nothing if there is none. The 6.12 tree has no
# selftests/vfio: its guests run the newer line's selftests (scripts/build-vfio-selftests.sh).
vfio_selftests_src() {
	if [ -n "${VIR_VFIO_SELFTESTS_SRC:-}" ]; then
		echo "$VIR_VFIO_SELFTESTS_SRC"
		return 0
	fi
	local d
	for d in "$VIR_CACHE"/src/linux-[0-9]*/tools/testing/selftests/vfio; do
		if [ -f "$d/Makefile" ]; then echo "${d%/tools/testing/selftests/vfio}"; fi
	done | sort -V | tail -n1
	return 0
}
kernel_builddir() { printf '%s/kernel/%s' "$VIR_CACHE" "$(kernel_key)"; }
