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

require_kvm() {
	if [ ! -c /dev/kvm ] || ! (exec 3<>/dev/kvm) 2>/dev/null; then
		# As in tests/lib/kvm_test.c: rerun inside the nested-KVM sandbox
		# when scripts/check found one that works.
		if [ -n "${KVM_MIGRATE_SANDBOX:-}" ] && [ -z "${KVM_MIGRATE_IN_SANDBOX:-}" ]; then
			echo "# no KVM here: running in the QEMU sandbox's nested KVM"
			export KVM_MIGRATE_IN_SANDBOX=1
			exec "$KVM_MIGRATE_SANDBOX" --timeout 900 -- bash "$0" "$@"
		fi
		tap_skip_all "needs /dev/kvm, which is not a character device that opens here"
	fi
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
# makes a hang a failure, the poll is on the condition itself.
wait_for() {
	local desc="$1" t="$2" end
	shift 2
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
# The verify guest checked every page it wrote and found none bad.
checked_ok() { q "$1" '{"execute": "check"}' 2>/dev/null | grep -Eq '"bad": *0[,}]'; }
