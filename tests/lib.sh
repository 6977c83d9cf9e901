# TAP helpers for shell tests (sourced). Each test script prints a plan,
# one "ok"/"not ok" line per check, and exits 0; the automake TAP driver
# counts the lines.

: "${top_builddir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_srcdir:=$top_builddir}"
KVM_RUN="$top_builddir/kvm/kvm-run"
QMP_SEND="$top_builddir/tests/lib/qmp-send"
KVM_MIGRATE="$top_builddir/migrate/kvm-migrate"
KVM_MIGRATED="$top_builddir/migrate/kvm-migrated"
MAKE_CERTS="$top_srcdir/scripts/make-certs"
export KVM_MIGRATE_GUEST_DIR="$top_builddir/kvm/guest"
TAP_N=0

tap_plan() { echo "1..$1"; }
tap_ok() { TAP_N=$((TAP_N + 1)); echo "ok $TAP_N - $1"; }
tap_fail() { TAP_N=$((TAP_N + 1)); echo "not ok $TAP_N - $1"; shift; for l in "$@"; do echo "# $l"; done; }
# The whole script is skipped, with the reason (TAP "1..0 # SKIP").
tap_skip_all() { echo "1..0 # SKIP $1"; exit 0; }
# The script cannot go on: an error, not a skip (TAP "Bail out!").
bail() { echo "Bail out! $1"; exit 1; }

kvm_works() { [ -c /dev/kvm ] && (exec 3<>/dev/kvm) 2>/dev/null; }

# Runs the rest of the script where KVM is: here, or (as tests/lib/kvm_test.c
# does for the C tests) inside the nested-KVM sandbox that scripts/check
# found working (KVM_MIGRATE_SANDBOX), also where this host has KVM when
# KVM_MIGRATE_FORCE_SANDBOX=1. Neither: the script is skipped, with why.
require_kvm() {
	if [ -z "${KVM_MIGRATE_IN_SANDBOX:-}" ] && [ -n "${KVM_MIGRATE_SANDBOX:-}" ] &&
	   { [ "${KVM_MIGRATE_FORCE_SANDBOX:-0}" = 1 ] || ! kvm_works; }; then
		echo "# running in the QEMU sandbox's nested KVM"
		export KVM_MIGRATE_IN_SANDBOX=1
		"$KVM_MIGRATE_SANDBOX" --timeout "${KVM_MIGRATE_SANDBOX_TIMEOUT:-900}" -- bash "$0" "$@"
		local st=$?
		# The sandbox itself failed (125) or ran out of time (124): an
		# error of this test program, never a skip.
		case $st in
		0) exit 0 ;;
		124) bail "the sandbox timed out" ;;
		125) bail "the sandbox failed to start" ;;
		*) exit "$st" ;;
		esac
	fi
	kvm_works || tap_skip_all "needs /dev/kvm, which is not a character device that opens here"
	load_pace
}

# ---- pace: sizes follow the machine (tests/README.md) ----------------------
# KM_PACE_* (tests/pace.sh) of where this runs: measured once by
# scripts/check (KVM_MIGRATE_PACE names its file), else measured here.
load_pace() {
	local where=native out
	[ -n "${KVM_MIGRATE_IN_SANDBOX:-}" ] && where=sandbox
	if [ -n "${KVM_MIGRATE_PACE:-}" ] && grep -qs "^KM_PACE_WHERE=$where$" "$KVM_MIGRATE_PACE"; then
		. "$KVM_MIGRATE_PACE"
	else
		out=$("$top_srcdir/tests/pace.sh" "$top_builddir") || bail "tests/pace.sh failed"
		eval "$out"
	fi
	echo "# pace ($KM_PACE_WHERE): $KM_PACE_TLS_PPS pages/s over TLS, $KM_PACE_UNIX_PPS over" \
		"unix, the guest dirties $KM_PACE_DIRTY_PPS pages/s; time bounds x$(pace_time 1)"
}
emulated() { [ "$KM_PACE_WHERE" != native ]; }
# sized NATIVE DERIVED: the number a test was written with where KVM is
# native; elsewhere the smaller of it and DERIVED (from KM_PACE_*), at least 1.
sized() {
	if ! emulated; then echo "$1"
	elif [ "$2" -lt 1 ]; then echo 1
	elif [ "$2" -lt "$1" ]; then echo "$2"
	else echo "$1"; fi
}
# stretched NATIVE DERIVED: NATIVE where KVM is native; elsewhere the larger.
stretched() {
	if ! emulated || [ "$2" -lt "$1" ]; then echo "$1"; else echo "$2"; fi
}
# pace_time N: a time bound of N (seconds or ms) natively; on a machine that
# moves fewer than 5000 pages/s over TLS, stretched by 5000 / that, at most x5.
pace_time() {
	local f=$(( 5000 / (KM_PACE_TLS_PPS > 0 ? KM_PACE_TLS_PPS : 1) ))
	emulated || f=1
	[ "$f" -lt 1 ] && f=1
	[ "$f" -gt 5 ] && f=5
	echo $(( $1 * f ))
}

# check DESC EXPECTED_STATUS PATTERN CMD... : runs CMD, expects its exit
# status and a line of its stderr+stdout matching PATTERN (grep -E).
check() {
	local desc="$1" want="$2" pat="$3" out st
	shift 3
	out=$("$@" 2>&1) && st=0 || st=$?
	if [ "$st" = "$want" ] && printf '%s\n' "$out" | grep -Eq -- "$pat"; then
		tap_ok "$desc"
	else
		tap_fail "$desc" "command: $*" "exit status $st, wanted $want; pattern /$pat/" \
			"$(printf '%s\n' "$out" | head -20)"
	fi
}

# wait_for DESC TIMEOUT_S CMD...: polls CMD until it succeeds; the bound
# makes a hang a failure, the poll is on the condition itself. The bound
# follows the machine's pace (pace_time).
wait_for() {
	local desc="$1" t="$2" end
	shift 2
	[ -n "${KM_PACE_WHERE:-}" ] && t=$(pace_time "$t")
	end=$(( $(date +%s) + t ))
	until "$@" 2>/dev/null; do
		if [ "$(date +%s)" -ge "$end" ]; then
			echo "# timed out after ${t}s waiting for $desc"
			return 1
		fi
		sleep 0.02
	done
}

# ok_if DESC CMD...: one TAP line for a condition.
ok_if() {
	local desc="$1"
	shift
	if "$@"; then tap_ok "$desc"; else tap_fail "$desc" "failed: $*"; fi
}

# A VM's control socket, as the migration tests ask it.
q() { "$QMP_SEND" "$@"; }
running() { q "$1" '{"execute": "query-status"}' 2>/dev/null | grep -q '"running": *true'; }
# The VM behind a control socket answers (running or not).
answers() { q "$1" '{"execute": "query-status"}' >/dev/null 2>&1; }
# checked_ok SOCK PAGES: the verify guest checked every page it owns, all
# PAGES of its working set (a guest without a check routine, or with vCPUs
# left out, answers fewer), and found none bad.
checked_ok() {
	local out
	out=$(q "$1" '{"execute": "check"}' 2>/dev/null) || return 1
	printf '%s\n' "$out" | grep -Eq "\"pages\": *$2[,}]" &&
		printf '%s\n' "$out" | grep -Eq '"bad": *0[,}]' && return 0
	echo "# check at $1: $out (wanted $2 pages, 0 bad)"
	return 1
}

# png_size FILE: "WIDTHxHEIGHT" of a PNG file (its signature and IHDR), or nothing.
png_size() {
	[ "$(od -An -tx1 -N8 "$1" 2>/dev/null | tr -d ' \n')" = 89504e470d0a1a0a ] || return 1
	[ "$(od -An -c -j12 -N4 "$1" | tr -d ' \n')" = IHDR ] || return 1
	od -An -tu1 -j16 -N8 "$1" | awk '{printf "%dx%d\n", (($1 * 256 + $2) * 256 + $3) * 256 + $4, (($5 * 256 + $6) * 256 + $7) * 256 + $8}'
}
