#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Summarise guest runs: the tests' TAP (per test binary and backend), the comparison of the facts
# both backends' runs RECORDed, and three checks of each guest boot (it finished, its kernel log
# has no splat, our module unloaded at the end). Prints failures with context and ends with one
# line "N passed, N failed" (", N skipped, N known" when the upstream VFIO selftests skipped tests or
# failed as tests/upstream/known-differences expects of the kernel under test); exits non-zero if
# anything failed.
# Usage: report.sh BOOT_DIR...   (each holding the console.log and tap.log of one boot)
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: report.sh BOOT_DIR..." >&2; exit 2; }

# A guest splat: oops, BUG, WARN, KASAN, lockdep, UBSAN, a Rust panic, a hung task, a panic, a
# kmemleak report.
splat_re='accounting invariant violated|Oops|BUG:|kernel BUG|WARNING:|UBSAN:|INFO: (possible|task|trying|inconsistent|lockdep)|DEBUG_LOCKS_WARN_ON|suspicious RCU usage|general protection fault|rust_panic|panicked at|Kernel panic|blocked for more than|Call Trace:|suspected memory leak|unreferenced object'

known_file=$(cd "$(dirname "$0")/.." && pwd)/tests/upstream/known-differences
taps=()
for d in "$@"; do taps+=("$d/tap.log"); done

summary=$(cat "${taps[@]}" 2>/dev/null | awk -v known="$known_file" '
	BEGIN {
		# Known per-kernel differences of the upstream VFIO selftests:
		# "LINE BACKEND BINARY TEST | text of its log | why".
		while ((getline l < known) > 0) {
			if (l ~ /^#/ || l !~ /\|/) continue
			n = split(l, kf, / *\| */)
			split(kf[1], kh, " ")
			kpat[kh[1], kh[2], kh[3], kh[4]] = kf[2]; kwhy[kh[1], kh[2], kh[3], kh[4]] = kf[3]
		}
	}
	{ sub(/\r$/, "") }
	function flush(  extra) {
		if (cur == "") return
		if (up && rc == "4" && npass + nfail + nskip + nknown == 0) {
			# The upstream binary skipped as a whole before its harness ran.
			skips = skips "    " cur ": " lastmsg "\n"; skipped++; nskip++
		}
		if (up && rc == "1" && nfail == 0 && nknown > 0) rc = "0"
		if (rc != "0" && !(up && rc == "4") && nfail == 0) { fails = fails "    not ok " cur ": exited with status " rc "\n"; failed++; nfail++ }
		if (npass + nfail + nskip + nknown == 0) { fails = fails "    not ok " cur ": reported no test\n"; failed++; nfail++ }
		if (up && nwrong) { fails = fails "    not ok " cur ": " nwrong " containers served by another backend (# VIR-SERVED lines)\n"; failed++; nfail++ }
		if (up && npass && !nserved) { fails = fails "    not ok " cur ": no container or device served by " want "\n"; failed++; nfail++ }
		extra = (nskip ? sprintf(", %d skipped", nskip) : "") (nknown ? sprintf(", %d known", nknown) : "")
		lines = lines sprintf("    %-40s %3d passed, %d failed%s\n", cur, npass, nfail, extra)
		cur = ""
	}
	/^# VIR-RUN / {
		flush(); cur = $3 " [" $4 "]"; ran[$3, $4] = 1; npass = 0; nfail = 0; rc = "none"
		# Upstream VFIO selftests: "# VIR-RUN BINARY BACKEND upstream KERNEL-RELEASE".
		up = ($5 == "upstream"); bin = $3; be = $4;
		split($6, kv, "."); kline = kv[1] "." kv[2]
		want = be == "rust" ? "vfio_iommu_rust" : be == "type1" ? "vfio_iommu_type1" : be
		nskip = 0; nknown = 0; nserved = 0; nwrong = 0; tlog = ""; lastmsg = ""
		next
	}
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
	cur != "" && up && /^# VIR-SERVED / { if ($3 == want) nserved++; else if ($3 != "mismatch:") nwrong++; next }
	cur != "" && up && /^#  RUN / { tlog = ""; next }
	cur != "" && up && /^#/ { tlog = tlog "\n" $0; if ($0 ~ /^# +[^ ]/ && $0 !~ /^# Totals/) lastmsg = substr($0, 3); next }
	cur != "" && up && /^1\.\.0 # SKIP/ { skips = skips "    " cur ": " $0 "\n"; skipped++; nskip++; next }
	cur != "" && /^ok [0-9]+ / {
		if ($0 ~ /# SKIP/ && up) { skips = skips "    " cur ": " $0 "\n"; skipped++; nskip++ }
		else if ($0 ~ /# SKIP/) { fails = fails "    skipped (counts as failed) " cur ": " $0 "\n"; failed++; nfail++ }
		else { passed++; npass++ }
		next
	}
	cur != "" && up && /^not ok [0-9]+ / && ((kline, be, bin, $4) in kpat) && index(tlog, kpat[kline, be, bin, $4]) {
		knowns = knowns "    " cur ": " $4 ": " kwhy[kline, be, bin, $4] "\n"; knownc++; nknown++
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
		if (ncmp) lines = lines sprintf("    %-40s %3d passed, %d failed\n", "type1 vs rust records", ncmp - ndiff, ndiff)
		printf "%s", lines
		printf "SKIPS\n%s", skips
		printf "KNOWN\n%s", knowns
		printf "FAILS\n%s", fails
		printf "COUNTS %d %d %d %d\n", passed, failed, skipped, knownc
	}')

echo "$summary" | sed -n '/^SKIPS$/q;p'
passed=$(echo "$summary" | awk '/^COUNTS/ {print $2}')
failed=$(echo "$summary" | awk '/^COUNTS/ {print $3}')
skipped=$(echo "$summary" | awk '/^COUNTS/ {print $4}')
known=$(echo "$summary" | awk '/^COUNTS/ {print $5}')
skips=$(echo "$summary" | sed -n '/^SKIPS$/,/^KNOWN$/p' | sed '1d;$d')
knowns=$(echo "$summary" | sed -n '/^KNOWN$/,/^FAILS$/p' | sed '1d;$d')
fails=$(echo "$summary" | sed -n '/^FAILS$/,/^COUNTS/p' | sed '1d;$d')

check() { # check NAME OK DETAIL
	if [ "$2" = 1 ]; then
		passed=$((passed + 1))
		printf '    %-40s ok\n' "$1"
	else
		failed=$((failed + 1))
		printf '    %-40s FAILED: %s\n' "$1" "$3"
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

if [ -n "$skips" ]; then
	echo "Skipped by the upstream VFIO selftests (not passed, not failed; Documentation/testing.rst):"
	echo "$skips"
fi
if [ -n "$knowns" ]; then
	echo "Known differences of the kernel under test (tests/upstream/known-differences):"
	echo "$knowns"
fi
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
# The last line is always "N passed, N failed"; upstream skips and known differences, which are
# neither, are counted on the line before it.
if [ "$skipped" != 0 ] || [ "$known" != 0 ]; then
	echo "upstream VFIO selftests: $skipped skipped, $known known (not counted above or below)"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
