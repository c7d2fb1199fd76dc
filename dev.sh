#!/usr/bin/env bash
# dev.sh — the whole set-up in one command, on a fresh Debian 12 machine.
#
#   ./dev.sh demo            install what is missing, build, start the demo
#                            process (tests/targets/waits) and dump its threads
#   ./dev.sh test            install what is missing, build, run every test
#   ./dev.sh test-sanitize   the same suite built with ASan + UBSan (in CI)
#   ./dev.sh build           install what is missing and build only
#
# Packages come from apt-get; nothing else is downloaded here (the esbuild
# test fetches its binaries with npm when it runs, and
# test_golayout_toolchains.py Debian's Go 1.21-1.26 toolchain packages,
# pinned, into a cache it unpacks them in: none is installed).
# With CI=true, compiler warnings are errors.
set -euo pipefail
cd "$(dirname "$0")"

# Build and runtime: meson, a C compiler, elfutils' libdw, zlib, protobuf-c,
# libiberty, libmicrohttpd (serve's HTTP).  Tests: go tool pprof, eu-stack,
# gdb, g++ and rustc for the C++/Rust fixtures, curl for test_serve.py,
# setpriv for the permission test, valgrind for the memcheck test, perf and a real redis-server with redis-benchmark for
# test_cpu_truth.py (CPU profiles against perf's), nginx for
# test_real_programs.py; tcmalloc and mimalloc for test_heap_attach.py's
# allocators; chromium for test_flame.py (the flame graph SVG drawn
# headless); npm fetches the Go binaries (esbuild, built by Go 1.17, 1.18
# and 1.26) that test_gopclntab_esbuild.py reads Go's line table of.
# libc6-dbg gives glibc frames their source lines (the -nodebug tests hide
# it again).  libcapstone-dev decodes the x86-64 code of runtime.allgadd in
# a stripped Go binary, whose operands say where runtime.allgs is
# (symbolize/golayout.c).  delve: Debian's dlv is a real Go program, built
# stripped by Debian, whose goroutines test_goroutines_debian.py reads
# (and bench/goroutines.py compares pprofc with Delve itself).
PACKAGES=(meson ninja-build pkg-config gcc g++ python3 libdw-dev libelf-dev zlib1g-dev
          libprotobuf-c-dev protobuf-c-compiler libiberty-dev elfutils golang-go gdb
          util-linux libc6-dbg valgrind linux-perf redis-server redis-tools nginx-light
          libtcmalloc-minimal4 libmimalloc2.0 chromium scdoc libmicrohttpd-dev curl
          strace libcapstone-dev delve)
# node and npm (Debian's nodejs and npm, unless the machine has them from
# elsewhere, as NodeSource's nodejs, which bundles npm and conflicts with
# Debian's npm: then the commands are enough): test_trace_reader.py reads
# the trace files with Chrome DevTools' trace engine
# (@paulirish/trace_engine, pinned in tests/reader/package-lock.json),
# installed by install_trace_reader; test_gopclntab_esbuild.py fetches
# esbuild's Go binaries with npm pack.

install_missing() {
	local missing=() p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
	done
	command -v rustc >/dev/null || missing+=(rustc)
	command -v node >/dev/null || missing+=(nodejs)
	command -v npm >/dev/null || missing+=(npm)
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "dev.sh: installing ${missing[*]}" >&2
	local sudo=()
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null
}

# The trace reader of test_trace_reader.py, from npm (the test skips
# without it: a machine that cannot reach npm still runs the rest).
install_trace_reader() {
	[ -d tests/reader/node_modules/@paulirish/trace_engine ] && return 0
	command -v npm >/dev/null || return 0
	(cd tests/reader && npm ci --no-audit --no-fund --silent) ||
		echo "dev.sh: npm could not install the trace reader: test_trace_reader.py will skip" >&2
}

# configure DIR [meson options...]: set up once, reconfigure when options change.
configure() {
	local dir=$1
	shift
	local werror=()
	[ "${CI:-}" = true ] && werror=(-Dwerror=true)
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "${werror[@]}" "$@" >/dev/null
	else
		meson setup "$dir" "${werror[@]}" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
}

# Prints the plain summary line from meson's test log.
summary() {
	python3 - "$1/meson-logs/testlog.json" <<'EOF'
import json, sys
counts = {}
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    counts[r] = counts.get(r, 0) + 1
ok = counts.get("OK", 0)
skip = counts.get("SKIP", 0)
bad = sum(v for k, v in counts.items() if k not in ("OK", "SKIP"))
print("%d passed, %d failed, %d skipped" % (ok, bad, skip))
EOF
}

run_tests() {
	local dir=$1 rc=0
	meson test -C "$dir" --print-errorlogs --num-processes 1 || rc=$?
	summary "$dir"
	return $rc
}

demo() {
	# Globals, not locals: the EXIT trap runs after this function returns.
	demo_out=$(mktemp)
	build/tests/targets/waits >"$demo_out" 2>/dev/null </dev/null &
	demo_pid=$!
	trap 'kill $demo_pid 2>/dev/null; rm -f "$demo_out"' EXIT
	# The demo prints "ready" once all its threads sit in their waits.
	for _ in $(seq 100); do grep -q ready "$demo_out" && break; sleep 0.1; done
	echo "\$ pprofc dump-threads $demo_pid    # the demo process, tests/targets/waits.c"
	build/cli/pprofc dump-threads "$demo_pid"
}

case "${1:-}" in
	demo)          install_missing; configure build; demo ;;
	test)          install_missing; install_trace_reader; configure build; run_tests build ;;
	test-sanitize) install_missing; install_trace_reader
	               configure build-sanitize -Db_sanitize=address,undefined -Db_lundef=false \
	                         -Dc_args=-fno-sanitize-recover=all
	               run_tests build-sanitize ;;
	build)         install_missing; configure build ;;
	*)             echo "usage: ./dev.sh demo | test | test-sanitize | build" >&2; exit 2 ;;
esac
