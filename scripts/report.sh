#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Summarise a guest run: the tests' TAP (per test binary and backend) plus three checks of the guest
# itself (it finished, its kernel log has no splat, our module unloaded at the end). Prints failures
# with context and ends with one line "N passed, N failed"; exits non-zero if anything failed.
# Usage: report.sh CONSOLE_LOG TAP_LOG
set -uo pipefail
console=${1:?}
tap=${2:?}

# A guest splat: oops, BUG, WARN, KASAN, lockdep, UBSAN, a Rust panic, a hung task, a panic.
splat_re='Oops|BUG:|kernel BUG|WARNING:|KASAN|UBSAN|lockdep|possible recursive locking|circular locking|inconsistent lock state|sleeping function called from invalid context|general protection fault|rust_panic|panicked at|Kernel panic|hung_task|blocked for more than|Call Trace:'

summary=$(awk '
	{ sub(/\r$/, "") }
	function flush() {
		if (cur == "") return
		if (rc != "0" && nfail == 0) { fails = fails "    not ok " cur ": exited with status " rc "\n"; failed++; nfail++ }
		if (npass + nfail == 0) { fails = fails "    not ok " cur ": reported no test\n"; failed++; nfail++ }
		lines = lines sprintf("    %-34s %3d passed, %d failed\n", cur, npass, nfail)
		cur = ""
	}
	/^# VIR-RUN / { flush(); cur = $3 " [" $4 "]"; npass = 0; nfail = 0; rc = "none"; next }
	/^# VIR-EXIT / { rc = $5; next }
	/^# VIR-DONE/ { done = 1; next }
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
			ncmp++
			if (!((key, "t") in rec) || !((key, "r") in rec) || rec[key, "t"] != rec[key, "r"]) {
				ndiff++; failed++
				fails = fails "    backends differ: " key ": type1 \"" rec[key, "t"] "\", rust \"" rec[key, "r"] "\"\n"
			} else passed++
		}
		if (ncmp) lines = lines sprintf("    %-34s %3d passed, %d failed\n", "type1 vs rust records", ncmp - ndiff, ndiff)
		printf "%s", lines
		printf "FAILS\n%s", fails
		printf "COUNTS %d %d %d\n", passed, failed, done
	}' "$tap")

echo "$summary" | sed -n '/^FAILS$/q;p'
passed=$(echo "$summary" | awk '/^COUNTS/ {print $2}')
failed=$(echo "$summary" | awk '/^COUNTS/ {print $3}')
done=$(echo "$summary" | awk '/^COUNTS/ {print $4}')
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
check "guest finished" "$done" "no completion marker (crash, panic or timeout; see $console)"
splats=$(grep -nE "$splat_re" "$console" || true)
check "guest kernel log clean" "$([ -z "$splats" ] && echo 1 || echo 0)" "splat in $console"
check "vfio_iommu_rust unloaded at end" \
	"$(grep -q 'VIR: rmmod vfio_iommu_rust: ok' "$console" && echo 1 || echo 0)" \
	"module still loaded or busy at the end"

if [ -n "$fails" ]; then
	echo "Failures (full TAP: $tap):"
	echo "$fails"
	# Show each failing test's log from the TAP stream.
	echo "$fails" | sed -nE 's/.*not ok [0-9]+ ([^ ]+).*/\1/p' | sort -u | while read -r t; do
		grep -B30 -E "^not ok [0-9]+ $t\b" "$tap" | grep -E '^#' | tail -n 12 | sed 's/^/      /'
	done
fi
if [ -n "$splats" ]; then
	first=$(echo "$splats" | head -n1 | cut -d: -f1)
	echo "Guest kernel splat (from $console, line $first):"
	sed -n "$((first > 5 ? first - 5 : 1)),$((first + 40))p" "$console" | sed 's/^/    | /'
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
