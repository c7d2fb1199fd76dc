#!/usr/bin/env bash
# bench/fuzz.sh — runs the libFuzzer targets of tests/fuzz/ (the /proc
# parsers, the wait classifier) for a set time each.
#
#   bench/fuzz.sh [SECONDS]     default 60 seconds per target
#
# Builds build-fuzz/ with CC=clang -Dfuzz=true (installing clang and its
# libFuzzer runtime with apt-get if missing), runs fuzz_proc and fuzz_wait
# side by side, each on a work corpus copied from tests/fuzz/corpus/ into a
# temporary directory and with its dictionary (tests/fuzz/TARGET.dict), and
# prints per target: runs, seconds, coverage (libFuzzer's cov:) and crashes.
# A crash, leak, timeout or out-of-memory input is kept in
# build-fuzz/artifacts/TARGET/; it belongs in tests/fuzz/corpus/TARGET/ once
# fixed, with a regression unit test.
# Exits 1 if any target found something.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-60}
TARGETS=(proc wait)
BUILD=build-fuzz
MAX_LEN=65536          # a maps or net table of a few hundred lines

case "$SECS" in
	''|*[!0-9]*) echo "usage: bench/fuzz.sh [SECONDS]" >&2; exit 2 ;;
esac

# clang can build a libFuzzer binary (needs the compiler-rt runtime).
fuzzer_works() {
	local dir
	command -v clang >/dev/null || return 1
	dir=$(mktemp -d)
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
		'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
		>"$dir/t.c"
	clang -fsanitize=fuzzer,address,undefined "$dir/t.c" -o "$dir/t" >/dev/null 2>&1
	local rc=$?
	rm -rf "$dir"
	return $rc
}

install_clang() {
	fuzzer_works && return 0
	echo "fuzz.sh: installing clang and its libFuzzer runtime" >&2
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		clang libclang-rt-dev >/dev/null
	fuzzer_works || { echo "fuzz.sh: clang cannot build a libFuzzer target" >&2; exit 1; }
}

build() {
	local log=$BUILD.log reconf=()
	[ -f "$BUILD/build.ninja" ] && reconf=(--reconfigure)
	if ! { CC=clang meson setup "${reconf[@]}" "$BUILD" -Dfuzz=true &&
	       ninja -C "$BUILD" tests/fuzz/fuzz_proc tests/fuzz/fuzz_wait; } >"$log" 2>&1; then
		tail -20 "$log" >&2
		echo "fuzz.sh: build failed (log: $log)" >&2
		exit 1
	fi
	rm -f "$log"
}

# run TARGET WORKDIR: one fuzzing session, its log in WORKDIR/log.
run() {
	local t=$1 work=$2 art="$BUILD/artifacts/$1"
	mkdir -p "$work/corpus" "$art"
	cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
	local start end rc=0
	start=$(date +%s.%N)
	"$BUILD/tests/fuzz/fuzz_$t" -max_total_time="$SECS" -max_len=$MAX_LEN -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
		-dict="tests/fuzz/$t.dict" "$work/corpus" >"$work/log" 2>&1 || rc=$?
	end=$(date +%s.%N)
	echo "$rc $start $end" >"$work/status"
}

# report TARGET WORKDIR: runs, seconds, cov, crashes from the log.
report() {
	local t=$1 work=$2 rc start end runs cov crashes
	read -r rc start end <"$work/status"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	[ -n "$runs" ] || runs=$(grep -o '^#[0-9]*' "$work/log" | tail -1 | tr -d '#')
	cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | cut -d' ' -f2)
	# Every sanitizer and libFuzzer report (crash, leak, timeout, oom,
	# UBSan) ends with one SUMMARY line.
	crashes=$(grep -c '^SUMMARY: ' "$work/log" || true)
	printf '%-5s runs %s  seconds %s  cov %s  crashes %s\n' "$t" "${runs:-0}" \
		"$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')" "${cov:-?}" "$crashes"
	if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
		echo "  fuzz_$t exited $rc; inputs kept in $BUILD/artifacts/$t/:" \
			"$(ls "$BUILD/artifacts/$t" | tr '\n' ' ')"
		grep -E 'ERROR|runtime error|SUMMARY' "$work/log" | sed 's/^/  /'
		return 1
	fi
}

install_clang
build
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in "${TARGETS[@]}"; do
	run "$t" "$tmp/$t" &
done
wait
bad=0
for t in "${TARGETS[@]}"; do
	report "$t" "$tmp/$t" || bad=1
done
exit $bad
