#!/bin/bash
# Migrations that fail, on purpose: cancelled mid-round, the destination
# killed mid-stream, dying after ready (settled by asking the daemon, or
# left unsettled when it cannot be asked), hanging before ready or in the
# TLS handshake, a flipped byte, peers with bad certificates, the daemon
# terminated or hung up. Each is followed by "the source still runs and
# every page checks". Sizes follow the machine's pace (tests/README.md).
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 42

"$MAKE_CERTS" "$tmp/other-ca" >/dev/null 2>&1 &&
	"$MAKE_CERTS" --expired --ca-from "$tmp/x509-ca" "$tmp/expired" >/dev/null 2>&1 ||
	bail "scripts/make-certs failed"

A=$tmp/a B=$tmp/b C=$tmp/c
start_daemon b "$B" || echo "# daemon b did not start: $(cat "$tmp/daemon-b.log")"
"$KVM_MIGRATED" --listen "unix:$tmp/c.sock" --rundir "$C" >"$tmp/daemon-c.log" 2>&1 &
pids+=($!)
wait_for "daemon c" 10 test -S "$tmp/c.sock"

rate1=$(rate_of 2000 1) pages16=$(wss_pages 16)

# A slow migration to break: the link capped at 4 MiB/s natively (a
# quarter of what TLS carries here elsewhere), the guest dirtying twice that,
# so that it never converges by itself, over about 8 s of its writes.
slow_k=$(sized 4096 "$T")
slow_rate=$(sized 2000 $(( slow_k / 4 * 2 )))
slow_pages=$(sized 16384 $(( slow_rate * 8 )))
slow_sent=$(sized 1000000 $(( slow_k * 1024 / 2 )))
echo "# slow migrations: cap ${slow_k} KiB/s, the guest writing $slow_rate pages/s over $slow_pages"
slow_start() {	# slow_start NAME DST [ARGS]: kvm-migrate in the background
	local name="$1" dst="$2"
	shift 2
	start_vm "$name" "$A" "$slow_rate" "$slow_pages" --mem 256M
	"$KVM_MIGRATE" --tls-dir "$tmp/x509" --rundir "$A" --bandwidth "${slow_k}K" "$@" \
		"$name" "$dst" >"$tmp/$name.out" 2>&1 &
	mig_pid=$!
	wait_for "the bulk round to be under way" 20 migrating "$A/$name.sock" "$slow_sent"
}

# Cancel mid-round; before that, a second migrate while one runs is refused
# and leaves the first alone.
slow_start cancel1 "127.0.0.1:$port_b"
q "$A/cancel1.sock" '{"execute": "migrate", "arguments": {"uri": "127.0.0.1:1"}}' \
	>"$tmp/second.out" 2>&1
second_refused() { grep -q '"error"' "$tmp/second.out" && migrating "$A/cancel1.sock" 0; }
ok_if "a second migrate while one runs is refused; the first goes on" second_refused
q "$A/cancel1.sock" '{"execute": "migrate-cancel"}' >/dev/null
wait "$mig_pid" && st=0 || st=$?
ok_if "migrate-cancel mid-round: kvm-migrate exits 1" [ "$st" = 1 ]
source_intact "cancel" "$A/cancel1.sock"
ok_if "cancel: the destination threw the partial VM away" \
	wait_for "the destination to give up" 20 grep -q "VM cancel1 .*refused: the source gave up" \
	"$tmp/daemon-b.log"
quit_vm "$A/cancel1.sock"

# The destination's receiving process killed (SIGKILL) mid-stream.
slow_start kill1 "127.0.0.1:$port_b"
child=$(pgrep -n -P "$pid_b")	# the newest: the receiving one
kill -KILL "$child"
wait "$mig_pid" && st=0 || st=$?
ok_if "destination killed mid-stream: kvm-migrate exits 1" [ "$st" = 1 ]
source_intact "destination killed" "$A/kill1.sock"
quit_vm "$A/kill1.sock"

# The destination crashes right after saying ready (before go): the source
# must not resume blindly; kvm-migrate asks the daemon and settles.
D_=$tmp/d
KVM_MIGRATE_FAULT=exit-after-ready start_daemon d "$D_"
start_vm crash1 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/crash1.out" --rundir "$A" crash1 "127.0.0.1:$port_d" && st=0 || st=$?
ok_if "destination dies after ready: kvm-migrate exits 1" [ "$st" = 1 ]
ok_if "it asked the destination and resumed the source" \
	grep -q "resumed at the source" "$tmp/crash1.out"
source_intact "destination died after ready" "$A/crash1.sock"
quit_vm "$A/crash1.sock"

# The same, but the daemon cannot be asked either (a proxy that carries one
# connection only): the source stays paused, cont is refused, exit 4; a
# later kvm-migrate to the same place settles it, one to another refuses.
KVM_MIGRATE_FAULT=exit-after-ready "$KVM_MIGRATED" --listen "unix:$tmp/x.sock" \
	--rundir "$tmp/x" >"$tmp/daemon-x.log" 2>&1 &
pids+=($!)
wait_for "daemon x" 10 test -S "$tmp/x.sock"
"$top_builddir/tests/lib/flip-proxy" "$tmp/xp.sock" "$tmp/x.sock" 999999999999 \
	2>"$tmp/xproxy.log" &
pids+=($!)
wait_for "the one-connection proxy" 10 test -S "$tmp/xp.sock"
start_vm crash2 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/crash2.out" --rundir "$A" crash2 "unix:$tmp/xp.sock" && st=0 || st=$?
unsettled() {
	[ "$st" = 4 ] && grep -q "stays paused at the source" "$tmp/crash2.out" &&
		! running "$A/crash2.sock" &&
		q "$A/crash2.sock" '{"execute": "query-migrate"}' | grep -q '"status": *"unknown"'
}
ok_if "destination gone after ready and not askable: exit 4, the source stays paused" unsettled
q "$A/crash2.sock" '{"execute": "cont"}' >"$tmp/crash2-cont.out" 2>&1
cont_no() { grep -q "switching this VM over" "$tmp/crash2-cont.out" && ! running "$A/crash2.sock"; }
ok_if "while unsettled, cont is refused" cont_no
migrate "$tmp/crash2b.out" --rundir "$A" crash2 "127.0.0.1:$port_b" && st=0 || st=$?
elsewhere_no() { [ "$st" = 4 ] && grep -q "unsettled migration to unix:$tmp/xp.sock" "$tmp/crash2b.out"; }
ok_if "kvm-migrate to another place refuses: only the first destination can settle it" \
	elsewhere_no
# The destination answers again (a new proxy at the same address).
rm -f "$tmp/xp.sock"
"$top_builddir/tests/lib/flip-proxy" "$tmp/xp.sock" "$tmp/x.sock" 999999999999 \
	2>"$tmp/xproxy2.log" &
pids+=($!)
wait_for "the proxy again" 10 test -S "$tmp/xp.sock"
migrate "$tmp/crash2c.out" --rundir "$A" crash2 "unix:$tmp/xp.sock" && st=0 || st=$?
settled_here() { [ "$st" = 1 ] && grep -q "resumed at the source" "$tmp/crash2c.out"; }
ok_if "kvm-migrate to the same place, answering again, settles it: resumed here (exit 1)" \
	settled_here
source_intact "settled later" "$A/crash2.sock"
quit_vm "$A/crash2.sock"

# A destination that hangs before ready: cancel does not wait for it.
KVM_MIGRATE_FAULT=hang-before-ready start_daemon h "$tmp/h"
start_vm hang1 "$A" "$rate1" "$pages16" --mem 256M
"$KVM_MIGRATE" --tls-dir "$tmp/x509" --rundir "$A" hang1 "127.0.0.1:$port_h" \
	>"$tmp/hang1.out" 2>&1 &
mig_pid=$!
waiting_ready() {
	q "$1" '{"execute": "query-migrate"}' 2>/dev/null | grep -q '"status": *"device"'
}
wait_for "the source to wait for ready" 20 waiting_ready "$A/hang1.sock"
# The switchover is under way: a user's cont must not run a second copy.
q "$A/hang1.sock" '{"execute": "cont"}' >"$tmp/hang1-cont.out" 2>&1
cont_refused() {
	grep -q 'switching this VM over' "$tmp/hang1-cont.out" && ! running "$A/hang1.sock" &&
		waiting_ready "$A/hang1.sock"
}
ok_if "during the switchover, cont is refused and the source stays paused" cont_refused
q "$A/hang1.sock" '{"execute": "migrate-cancel"}' >/dev/null
# Within 10 s: well under the 30 s I/O timeout a silent peer would otherwise cost.
t0=$(date +%s%N)
wait_for "kvm-migrate to finish" 10 sh -c "! kill -0 $mig_pid"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait "$mig_pid" && st=0 || st=$?
ok_if "a destination hangs before ready: migrate-cancel ends it in ${ms} ms (< 10 s), exit 1" \
	[ "$ms" -lt 10000 -a "$st" = 1 ]
source_intact "hung destination" "$A/hang1.sock"

# A destination that accepts the connection and never answers the TLS
# handshake: a cancel does not wait out the 10 s handshake bound.
KVM_MIGRATE_FAULT=hang-in-handshake start_daemon hs "$tmp/hs"
"$KVM_MIGRATE" --tls-dir "$tmp/x509" --rundir "$A" hang1 "127.0.0.1:$port_hs" \
	>"$tmp/hang2.out" 2>&1 &
mig_pid=$!
wait_for "the daemon to accept and go silent" 20 grep -q "never answering" "$tmp/daemon-hs.log"
t0=$(date +%s%N)
q "$A/hang1.sock" '{"execute": "migrate-cancel"}' >/dev/null
wait "$mig_pid" && st=0 || st=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
ok_if "cancel during the TLS handshake ends it in ${ms} ms (< 5000), exit 1, cancelled" \
	sh -c "[ $ms -lt 5000 ] && [ $st = 1 ] && grep -q 'cancelled on request' '$tmp/hang2.out'"
source_intact "after the cancelled handshake" "$A/hang1.sock"
quit_vm "$A/hang1.sock"

# A flipped byte in the stream (a unix proxy in front of daemon c):
# the record checksum catches it (TLS would too, but this checks our own).
start_vm flip1 "$A" "$rate1" "$pages16" --mem 256M
"$top_builddir/tests/lib/flip-proxy" "$tmp/proxy.sock" "$tmp/c.sock" 200000 2>"$tmp/proxy.log" &
pids+=($!)
wait_for "the proxy" 10 test -S "$tmp/proxy.sock"
migrate "$tmp/flip1.out" --rundir "$A" flip1 "unix:$tmp/proxy.sock" && st=0 || st=$?
ok_if "a flipped byte in the stream: kvm-migrate exits 1" \
	[ "$st" = 1 -a -n "$(grep flipped "$tmp/proxy.log")" ]
source_intact "flipped byte" "$A/flip1.sock"
ok_if "the destination refused the corrupt stream" wait_for "the daemon's line" 10 \
	grep -Eq "refused: .*(corrupt|checksum)" "$tmp/daemon-c.log"
quit_vm "$A/flip1.sock"

# Certificates: the daemon refuses, then serves the next good client.
start_vm cert1 "$A" "$rate1" "$pages16" --mem 256M
refused() {	# refused DESC PATTERN ARGS...: only the daemon's new lines count
	local desc="$1" pat="$2" st n_before
	shift 2
	n_before=$(wc -l <"$tmp/daemon-b.log")
	new_refusal() { tail -n +"$((n_before + 1))" "$tmp/daemon-b.log" |
		grep -Eq "refused a connection: .*$pat"; }
	timeout "$(pace_time 60)" "$KVM_MIGRATE" --rundir "$A" "$@" cert1 "127.0.0.1:$port_b" \
		>"$tmp/cert.out" 2>&1 && st=0 || st=$?
	if [ "$st" = 1 ] && wait_for "the daemon's log line" 10 new_refusal; then
		tap_ok "$desc: refused, and the daemon says why"
	else
		tap_fail "$desc" "kvm-migrate exit $st: $(cat "$tmp/cert.out")" \
			"$(tail -3 "$tmp/daemon-b.log")"
	fi
	ok_if "$desc: the source VM still runs" running "$A/cert1.sock"
}
refused "client certificate from another CA" "(unknown ca|certificate verify|unable to get)" \
	--tls-dir "$tmp/other-ca"
refused "expired client certificate" "expired" --tls-dir "$tmp/expired"
refused "plain TCP client" "(not a TLS|wrong version|packet length|record)" --insecure
if migrate "$tmp/cert-ok.out" --rundir "$A" cert1 "127.0.0.1:$port_b" && vm_ok "$B/cert1.sock"; then
	tap_ok "after those, the same daemon takes a good client's VM"
else
	tap_fail "good client after bad ones" "$(cat "$tmp/cert-ok.out")"
fi
ok_if "the daemon still runs" kill -0 "$pid_b"

# The daemon shuts down cleanly on SIGTERM; received VMs live on.
kill -TERM "$pid_b"
wait "$pid_b" && st=0 || st=$?
ok_if "kvm-migrated exits 0 on SIGTERM" [ "$st" = 0 ]
ok_if "the VM it received still runs" running "$B/cert1.sock"
ok_if "and is still correct" vm_ok "$B/cert1.sock"
quit_vm "$B/cert1.sock"

# A daemon whose process group is hung up (its terminal closed): the
# daemon goes, the VM it received lives on in a session of its own.
# setsid(1) gives the daemon a group of its own, as a terminal's job has.
G=$tmp/g
setsid "$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$tmp/x509" --rundir "$G" \
	>"$tmp/daemon-g.log" 2>&1 &
pid_g=$!
pids+=($pid_g)
wait_for "daemon g" 10 grep -q "listening on" "$tmp/daemon-g.log"
port_g=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$tmp/daemon-g.log")
start_vm hup1 "$A" "$rate1" "$pages16" --mem 256M
migrate "$tmp/hup1.out" --rundir "$A" hup1 "127.0.0.1:$port_g" && st=0 || st=$?
ok_if "migrated to a daemon in its own process group" [ "$st" = 0 ]
kill -HUP -- "-$pid_g"
wait "$pid_g" 2>/dev/null
hup_survived() { ! kill -0 "$pid_g" 2>/dev/null && running "$G/hup1.sock" && vm_ok "$G/hup1.sock"; }
ok_if "SIGHUP to the daemon's group: the daemon goes, the VM it received runs on, correct" \
	hup_survived
quit_vm "$G/hup1.sock"
