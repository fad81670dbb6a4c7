#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Build the test kernel of the line VIR_KERNEL (Debian linux-source-<line> + scripts/kernel.config and
# scripts/kernel-<line>.config if any, on top of tinyconfig) out of
# tree, in a cache outside the clone keyed by kernel version, config fragments and rustc version.
# VIR_VARIANT=debug adds scripts/kernel-debug.config and builds with LLVM=-19. A cache hit returns
# at once. Prints the build directory (KDIR) on stdout, and nothing else: progress goes to stderr.
source "$(dirname "$0")/lib.sh"
exec 3>&1 1>&2

src=$(kernel_srcdir)
out=$(kernel_builddir)
stamp=$out/.vir-complete

if [ -f "$stamp" ]; then
	info "kernel: cache hit $(basename "$out")"
	echo "$out" >&3
	exit 0
fi
# One kernel build at a time: a second caller waits, then finds the first one's result.
exec 9>"$VIR_CACHE/.build.lock"
if ! flock -n 9; then
	info "kernel: another build is running; waiting for it"
	flock 9
	if [ -f "$stamp" ]; then
		info "kernel: cache hit $(basename "$out")"
		echo "$out" >&3
		exit 0
	fi
fi

if [ ! -f "$src/Makefile" ]; then
	stage "kernel: unpacking $VIR_KERNEL_PKG $(kernel_version) into $src"
	unpack_kernel_src
fi

rm -rf "$out"
mkdir -p "$out"
log=$VIR_LOGDIR/kernel-build-$VIR_KERNEL${VIR_VARIANT:+-$VIR_VARIANT}.log
flags=$(kernel_make_flags)
: >"$log"
stage "kernel: configuring $(basename "$out") (log: $log)"
kmake() { make -C "$src" O="$out" $flags "$@"; }
run_logged "$log.config" bash -c "
	set -e
	make -C '$src' O='$out' $flags tinyconfig
	'$src'/scripts/kconfig/merge_config.sh -m -O '$out' '$out/.config' $(kernel_fragments | tr '\n' ' ')
	make -C '$src' O='$out' $flags olddefconfig" || die "kernel configuration failed"

# Every option of the fragment must have survived olddefconfig (a missing dependency drops it silently).
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*}; want=$line ;;
	"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *}; want=$line ;;
	*) continue ;;
	esac
	got=$(grep -E "^$opt=|^# $opt is not set" "$out/.config" || true)
	if [ "$got" != "$want" ] && ! { [ -z "$got" ] && [[ $want == *"is not set" ]]; }; then
		printf 'error: kernel config: wanted "%s", got "%s"\n' "$want" "${got:-<absent>}" >&2
		bad=1
	fi
done < <(cat $(kernel_fragments) | awk '
	# A later fragment overrides an earlier one: check the last word on each option. The fragment of
	# a kernel line names the options that line no longer has ("# removed: CONFIG_X ...").
	/^# removed: CONFIG_/ { gone[$3] = 1; next }
	/^CONFIG_/ { o = $0; sub(/=.*/, "", o); last[o] = $0; order[++n] = o; next }
	/^# CONFIG_.* is not set/ { o = $2; last[o] = $0; order[++n] = o; next }
	END { for (i = 1; i <= n; i++) if (!(order[i] in done) && !(order[i] in gone)) { done[order[i]] = 1; print last[order[i]] } }')
[ $bad = 0 ] || die "kernel config fragment not satisfied (see $log.config)"

jobs=$(nproc)
echo "$flags" >"$out/.vir-make-flags"
stage "kernel: building bzImage, modules and Rust metadata with -j$jobs $flags (log: $log)"
start=$(date +%s)
kmake -j"$jobs" bzImage modules >"$log" 2>&1 &
pid=$!
expect=$(cat "$VIR_CACHE/kernel-objects-$VIR_KERNEL${VIR_VARIANT:+-$VIR_VARIANT}.count" 2>/dev/null || echo "")
while kill -0 $pid 2>/dev/null; do
	sleep 20
	n=$(grep -cE '^  (CC|RUSTC|AS|LD) ' "$log" || true)
	last=$(grep -E '^  [A-Z]+ ' "$log" | tail -n1 | sed 's/^ *//' || true)
	el=$(( $(date +%s) - start ))
	info "kernel: $((el / 60))m$((el % 60))s, $n objects${expect:+ of about $expect}; $last"
done
if ! wait $pid; then
	printf 'error: kernel build failed; full log: %s\n' "$log" >&2
	grep -E 'error|Error' "$log" | head -n 20 | sed 's/^/       | /' >&2
	tail -n 20 "$log" | sed 's/^/       | /' >&2
	exit 1
fi
grep -cE '^  (CC|RUSTC|AS|LD) ' "$log" >"$VIR_CACHE/kernel-objects-$VIR_KERNEL${VIR_VARIANT:+-$VIR_VARIANT}.count" || true

run_logged "$log.headers" kmake headers_install INSTALL_HDR_PATH="$out/usr" ||
	die "headers_install failed"
rm -rf "$out/modroot"
run_logged "$log.modinst" kmake modules_install INSTALL_MOD_PATH="$out/modroot" ||
	die "modules_install failed"

el=$(( $(date +%s) - start ))
printf 'kernel %s built in %ss\n' "$(basename "$out")" "$el" >"$stamp"
stage "kernel: built in $((el / 60))m$((el % 60))s"
echo "$out" >&3
