#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Summarise guest runs: the tests' TAP (per test binary and backend), the comparison of the facts
# both backends' runs RECORDed, and three checks of each guest boot (it finished, its kernel log
# has no splat, our module unloaded at the end). Prints failures with context and ends with one
# line "N passed, N failed"; exits non-zero if anything failed.
# Usage: report.sh BOOT_DIR...   (each holding the console.log and tap.log of one boot)
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: report.sh BOOT_DIR..." >&2; exit 2; }

# A guest splat: oops, BUG, WARN, KASAN, lockdep, UBSAN, a Rust panic, a hung task, a panic, a
# kmemleak report.
splat_re='accounting invariant violated|Oops|BUG:|kernel BUG|WARNING:|UBSAN:|INFO: (possible|task|trying|inconsistent|lockdep)|DEBUG_LOCKS_WARN_ON|suspicious RCU usage|general protection fault|rust_panic|panicked at|Kernel panic|blocked for more than|Call Trace:|suspected memory leak|unreferenced object'

taps=()
for d in "$@"; do taps+=("$d/tap.log"); done

summary=$(cat "${taps[@]}" 2>/dev/null | awk '
	{ sub(/\r$/, "") }
	function flush() {
		if (cur == "") return
		if (rc != "0" && nfail == 0) { fails = fails "    not ok " cur ": exited with status " rc "\n"; failed++; nfail++ }
		if (npass + nfail == 0) { fails = fails "    not ok " cur ": reported no test\n"; failed++; nfail++ }
		lines = lines sprintf("    %-34s %3d passed, %d failed\n", cur, npass, nfail)
		cur = ""
	}
	/^# VIR-RUN / { flush(); cur = $3 " [" $4 "]"; ran[$3, $4] = 1; npass = 0; nfail = 0; rc = "none"; next }
	/^# VIR-EXIT / { rc = $5; next }
	/^# VIR-DONE/ { next }
	cur != "" && /^# RECORD / {
		split(cur, parts, " ")
		key = parts[1] " " $3 " " $4
		val = $0; sub(/^# RECORD [^ ]+ [^ ]+ ?/, "", val)
		b = (parts[2] == "[type1]") ? "t" : "r"
		rec[key, b] = val; seen[key] = 1
		next
	}
	cur != "" && /^ok [0-9]+ / {
		if ($0 ~ /# SKIP/) { fails = fails "    skipped (counts as failed) " cur ": " $0 "\n"; failed++; nfail++ }
		else { passed++; npass++ }
		next
	}
	cur != "" && /^not ok [0-9]+ / { fails = fails "    " cur ": " $0 "\n"; failed++; nfail++; next }
	END {
		flush()
		ncmp = 0; ndiff = 0
		for (key in seen) {
			# Only binaries that ran against both backends are compared.
			split(key, kp, " ")
			if (!((kp[1], "type1") in ran) || !((kp[1], "rust") in ran)) continue
			ncmp++
			if (!((key, "t") in rec) || !((key, "r") in rec) || rec[key, "t"] != rec[key, "r"]) {
				ndiff++; failed++
				fails = fails "    backends differ: " key ": type1 \"" rec[key, "t"] "\", rust \"" rec[key, "r"] "\"\n"
			} else passed++
		}
		if (ncmp) lines = lines sprintf("    %-34s %3d passed, %d failed\n", "type1 vs rust records", ncmp - ndiff, ndiff)
		printf "%s", lines
		printf "FAILS\n%s", fails
		printf "COUNTS %d %d\n", passed, failed
	}')

echo "$summary" | sed -n '/^FAILS$/q;p'
passed=$(echo "$summary" | awk '/^COUNTS/ {print $2}')
failed=$(echo "$summary" | awk '/^COUNTS/ {print $3}')
fails=$(echo "$summary" | sed -n '/^FAILS$/,/^COUNTS/p' | sed '1d;$d')

check() { # check NAME OK DETAIL
	if [ "$2" = 1 ]; then
		passed=$((passed + 1))
		printf '    %-34s ok\n' "$1"
	else
		failed=$((failed + 1))
		printf '    %-34s FAILED: %s\n' "$1" "$3"
	fi
}
splat_shown=
for d in "$@"; do
	boot=$(basename "$d")
	console=$d/console.log
	check "$boot guest finished" "$(grep -q '^# VIR-DONE' "$d/tap.log" 2>/dev/null && echo 1 || echo 0)" \
		"no completion marker (crash, panic or timeout; see $console)"
	splats=$(grep -nE "$splat_re" "$console" 2>/dev/null || true)
	check "$boot guest kernel log clean" "$([ -z "$splats" ] && echo 1 || echo 0)" "splat in $console"
	check "$boot vfio_iommu_rust unloaded" \
		"$(grep -q 'VIR: rmmod vfio_iommu_rust: ok' "$console" 2>/dev/null && echo 1 || echo 0)" \
		"module still loaded or busy at the end"
	if [ -n "$splats" ] && [ -z "$splat_shown" ]; then
		splat_shown=1
		first=$(echo "$splats" | head -n1 | cut -d: -f1)
		splat_text=$(sed -n "$((first > 5 ? first - 5 : 1)),$((first + 40))p" "$console" | sed 's/^/    | /')
		splat_from="$console, line $first"
	fi
done

if [ -n "$fails" ]; then
	echo "Failures (full TAP: ${taps[*]}):"
	echo "$fails"
	# Show each failing test's log from the TAP streams.
	echo "$fails" | sed -nE 's/.*not ok [0-9]+ ([^ ]+).*/\1/p' | sort -u | while read -r t; do
		cat "${taps[@]}" | grep -B30 -E "^not ok [0-9]+ $t\b" | grep -E '^#' | tail -n 12 | sed 's/^/      /'
	done
fi
if [ -n "$splat_shown" ]; then
	echo "Guest kernel splat (from $splat_from):"
	echo "$splat_text"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
