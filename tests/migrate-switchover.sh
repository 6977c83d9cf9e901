#!/bin/bash
# The switchover races (docs/protocol.md s.6): a proxy between the source
# and the destination daemon (tests/lib/switch-proxy, unix sockets: the
# records are visible) holds the go record, or drops the link right before
# or after go, ready or running, or the receiver is killed while go is
# held; the source's and the daemon's I/O timeouts are shorter or longer
# than the hold. In every case, once the dust settles, exactly one copy of
# the VM runs (the source, or the destination), and the verify guest finds
# every page correct there. Sizes follow the machine's pace (tests/README.md).
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 24

PROXY=$top_builddir/tests/lib/switch-proxy
REC_READY=9 REC_GO=10 REC_RUNNING=11
A=$tmp/a X=$tmp/x
short=$(pace_time 1)		# an I/O timeout shorter than the hold
hold=$(( short * 4 + 2 ))	# seconds go is held
long=$(( hold * 3 ))		# an I/O timeout longer than the hold
echo "# go held ${hold} s; I/O timeouts ${short} s (short) and ${long} s (long)"
rate1=$(rate_of 2000 1) pages16=$(wss_pages 16)

# daemon ARGS...: a fresh kvm-migrated on unix:$tmp/x.sock (run dir $X).
daemon() {
	[ -n "${pid_x:-}" ] && { kill -TERM "$pid_x"; wait "$pid_x"; } 2>/dev/null
	"$KVM_MIGRATED" --listen "unix:$tmp/x.sock" --rundir "$X" "$@" >>"$tmp/daemon-x.log" 2>&1 &
	pid_x=$!
	pids+=($pid_x)
	wait_for "daemon x" 10 test -S "$tmp/x.sock"
}
# proxy DIRECTION TYPE ACTION: a fresh switch-proxy at $tmp/p.sock.
proxy() {
	[ -n "${pid_p:-}" ] && kill "$pid_p" 2>/dev/null
	rm -f "$tmp/p.sock"
	"$PROXY" "$tmp/p.sock" "$tmp/x.sock" "$@" 2>"$tmp/proxy.log" &
	pid_p=$!
	pids+=($pid_p)
	wait_for "the proxy" 10 test -S "$tmp/p.sock"
}
# The receiver for VM NAME is gone from the daemon: its one line is logged.
receiver_done() { grep -q "VM $1 .*\(refused\|runs here\)" "$tmp/daemon-x.log"; }
# exactly_one NAME: one copy runs, source or destination, and it checks.
exactly_one() {
	local n=0 where=
	running "$A/$1.sock" && { n=$((n + 1)); where=$A; }
	running "$X/$1.sock" && { n=$((n + 1)); where=$X; }
	[ "$n" = 1 ] || { echo "# $1: $n copies run"; return 1; }
	vm_ok "$where/$1.sock"
}
# case_run DESC NAME WANT_EXIT WANT_WHERE [kvm-migrate ARGS...]: a
# migration through the proxy; then its exit status, where the VM runs,
# and that exactly one copy runs, with every page correct.
case_run() {
	local desc="$1" name="$2" want="$3" where="$4" st
	shift 4
	start_vm "$name" "$A" "$rate1" "$pages16" --mem 256M
	migrate "$tmp/$name.out" --rundir "$A" "$@" "$name" "unix:$tmp/p.sock" && st=0 || st=$?
	# The receiver has ended one way or the other (or runs the VM).
	wait_for "the receiver of $name to end" 60 receiver_done "$name"
	if [ "$st" = "$want" ]; then
		tap_ok "$desc: kvm-migrate exits $st"
	else
		tap_fail "$desc: kvm-migrate exit $st, wanted $want" "$(cat "$tmp/$name.out")" \
			"$(grep "$name" "$tmp/daemon-x.log")"
	fi
	if [ "$where" = source ]; then
		ok_if "$desc: the VM runs at the source" running "$A/$name.sock"
	else
		ok_if "$desc: the VM runs at the destination" running "$X/$name.sock"
	fi
	ok_if "$desc: exactly one copy runs, every page correct" exactly_one "$name"
	quit_vm "$A/$name.sock"
	quit_vm "$X/$name.sock"
}

# Go held longer than the source waits for running: the source asks the
# daemon, which decides that the pending receiver never starts and says
# "not here"; the source resumes; go arrives, and the receiver does not start.
daemon
proxy to-dst "$REC_GO" "delay:$(( hold * 1000 ))"
case_run "go held ${hold} s, source I/O timeout ${short} s" sw1 1 source --io-timeout "$short"
settled_first() {
	grep -q "VM sw1 .*refused: a status query settled first" "$tmp/daemon-x.log" ||
		{ echo "# daemon: $(grep sw1 "$tmp/daemon-x.log")"; return 1; }
}
ok_if "the receiver refused to start after the query settled it" settled_first

# The same hold, the source patient: the switchover completes late.
proxy to-dst "$REC_GO" "delay:$(( hold * 1000 ))"
case_run "go held ${hold} s, source I/O timeout ${long} s" sw2 0 destination --io-timeout "$long"

# The daemon gives up waiting for go first; go then meets a closed link.
daemon --io-timeout "$short"
proxy to-dst "$REC_GO" "delay:$(( hold * 1000 ))"
case_run "go held ${hold} s, daemon I/O timeout ${short} s" sw3 1 source --io-timeout "$long"

# The link drops at each step of the handshake.
daemon
proxy to-src "$REC_READY" drop-before
case_run "link dropped before ready reaches the source" sw4 1 source
proxy to-dst "$REC_GO" drop-before
case_run "link dropped before go reaches the destination" sw5 1 source
proxy to-dst "$REC_GO" drop-after
case_run "link dropped right after go" sw6 0 destination
proxy to-src "$REC_RUNNING" drop-before
case_run "link dropped before running reaches the source" sw7 0 destination

# The receiver killed while go is held: the name is free, so "not here".
proxy to-dst "$REC_GO" "delay:$(( hold * 1000 ))"
start_vm sw8 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/sw8.out" --rundir "$A" --io-timeout "$long" sw8 "unix:$tmp/p.sock" &
mig_pid=$!
wait_for "go to be held" 60 grep -q "delay:.* at record $REC_GO" "$tmp/proxy.log"
kill -KILL "$(pgrep -n -P "$pid_x")"
wait "$mig_pid" && st=0 || st=$?
ok_if "receiver killed while go is held: kvm-migrate exits 1, resumed at the source" \
	sh -c "[ $st = 1 ] && grep -q 'resumed at the source' '$tmp/sw8.out'"
ok_if "receiver killed while go is held: exactly one copy runs, every page correct" \
	exactly_one sw8
quit_vm "$A/sw8.sock"
