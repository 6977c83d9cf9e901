# Shared by the benchmark and figure scripts (bench-sim, research-figures):
# sourced after BUILD is set. The binaries, a QMP helper, polling, the
# guest's progress, and the sandbox hand-over for hosts without /dev/kvm.
KVM_RUN=$BUILD/kvm/kvm-run
KVM_MIGRATE=$BUILD/migrate/kvm-migrate
KVM_MIGRATED=$BUILD/migrate/kvm-migrated
QMP_SEND=$BUILD/tests/lib/qmp-send
export KVM_MIGRATE_GUEST_DIR=$BUILD/kvm/guest

# bench_build PROG: builds what is missing of the binaries above.
bench_build() {
	local b
	for b in "$KVM_RUN" "$KVM_MIGRATE" "$KVM_MIGRATED" "$QMP_SEND"; do
		[ -x "$b" ] || make -C "$BUILD" -j2 "${b#$BUILD/}" >&2 ||
			{ echo "$1: build failed" >&2; exit 1; }
	done
}
# bench_where PROG ARGS...: where /dev/kvm does not open, runs PROG ARGS in
# the QEMU sandbox instead (and does not return); sets WHERE (native or
# sandbox) otherwise. Set SANDBOX_RW to the directories the run writes to
# (an array; a plain variable is one).
bench_where() {
	local prog=$1
	shift
	WHERE=native
	if [ ! -c /dev/kvm ] || ! (exec 3<>/dev/kvm) 2>/dev/null; then
		if [ -n "${KVM_MIGRATE_IN_SANDBOX:-}" ]; then
			echo "$(basename "$prog"): no /dev/kvm, even in the sandbox" >&2
			exit 3
		fi
		echo "# no /dev/kvm here: running in the QEMU sandbox (figures emulated)" >&2
		local rw=() d
		for d in ${SANDBOX_RW[@]+"${SANDBOX_RW[@]}"}; do rw+=(--rw "$d"); done
		KVM_MIGRATE_IN_SANDBOX=1 exec "$TOP/scripts/sandbox/kvm-sandbox" --timeout 3600 \
			${rw[@]+"${rw[@]}"} -- bash "$prog" "$@"
	fi
	[ -n "${KVM_MIGRATE_IN_SANDBOX:-}" ] && WHERE=sandbox
	return 0
}
q() { "$QMP_SEND" "$@" 2>/dev/null; }
wait_for() {	# wait_for TIMEOUT_S CMD...: polls CMD every 20 ms
	local end=$(( $(date +%s) + $1 ))
	shift
	until "$@" 2>/dev/null; do
		[ "$(date +%s)" -ge "$end" ] && return 1
		sleep 0.02
	done
}
progress_above() {	# progress_above SOCK N: the vCPUs' progress counters sum past N
	[ "$(q "$1" '{"execute": "query-stats"}' | grep -o '"progress": *[0-9]*' |
		grep -o '[0-9]*$' | awk '{s += $1} END {print s + 0}')" -gt "$2" ]
}
# bench_daemon RUNDIR LOG: a kvm-migrated on 127.0.0.1 without TLS (the
# figures are of the engine, not of AES); sets PORT.
bench_daemon() {
	"$KVM_MIGRATED" --listen 127.0.0.1:0 --insecure --rundir "$1" >"$2" 2>&1 &
	pids+=($!)
	wait_for 20 grep -q "listening on" "$2" || { echo "kvm-migrated did not start: $(cat "$2")" >&2; return 1; }
	PORT=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$2")
}
