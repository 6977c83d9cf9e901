#!/bin/bash
# A booted Linux guest moves between two kvm-migrated daemons (loopback
# TLS) three times there and back while a process in it rewrites memory,
# and is then saved by a live snapshot and restored by kvm-run --restore.
# After each move: the same processes (a sleeper's PID answers kill -0),
# the same memory (the md5 of a 16 MiB file in the guest's tmpfs), a
# clock that went on (uptime never back, and not far ahead of the host's
# time, as a unit slip in moving the clock on by the downtime would put
# it: in the sandbox the guest's uptime gained up to 7 s on the host's 31
# between two readings), the console socket under the VM's name at the
# destination,
# answering there, and the copy left behind gone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-linux.sh"
require_linux
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 25
echo "# kernel $linux_kernel"
bash "$top_srcdir/tests/lib/make-initramfs.sh" "$tmp/initrd.cpio.gz" KVM-MIGRATE-INIT ||
	bail "cannot make the initramfs"

A="$tmp/run-a"
B="$tmp/run-b"
CON="$tmp/consoles"
mkdir -m 700 "$A" "$B" "$CON"
start_daemon a "$A" --console-dir "$CON" || bail "daemon a did not start: $(tail -3 "$tmp/daemon-a.log")"
start_daemon b "$B" --console-dir "$CON" || bail "daemon b did not start: $(tail -3 "$tmp/daemon-b.log")"

# 1. Boot, quiet (the kernel's messages are most of the console's exits).
t0=$(date +%s%N)
"$KVM_RUN" --name lx --rundir "$A" --mem 256M --vcpus 2 --kernel "$linux_kernel" \
	--initrd "$tmp/initrd.cpio.gz" --append "console=ttyS0 pci=off quiet panic=-1" \
	--console "$CON/boot.console" >"$tmp/kvm-run.out" 2>&1 &
pid=$!
pids+=($pid)
if wait_for "the init marker" 120 grep -q "^KVM-MIGRATE-INIT " "$CON/boot.console"; then
	tap_ok "Linux boots at A: marker after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
	bail "no init marker: $(tail -5 "$CON/boot.console" 2>/dev/null) $(tail -3 "$tmp/kvm-run.out")"
fi
consoles() { printf '%s\n' "$CON"/*.console; }

# The guest's state, in one line: "st-TAG pid=P md5=M up=U" (P only if the
# sleeper still answers kill -0). Its socket: RUNDIR/lx.console.
state_of() {	# state_of RUNDIR TAG: asks, and waits for the line
	local cmd="echo st-$2 pid=\$(kill -0 \$SLEEPER 2>/dev/null && echo \$SLEEPER)"
	cmd+=" md5=\$(md5sum /tmp/blob | cut -c1-32) up=\$(cut -d. -f1 /proc/uptime)"
	type_in "$1/lx.console" "$cmd"$'\n' &&
		wait_for "the guest's state line st-$2" 60 printed_in "st-$2 .*" $(consoles)
}
field_of() { the_line "st-$1 .*" $(consoles) | grep -o " $2=[^ ]*" | cut -d= -f2; }

# The sleeper, the 16 MiB of data, and a writer rewriting pages five
# times a second (the pages every pre-copy round finds dirty again), about
# a tenth of what the link carries.
wpages=$(sized 256 $(( T / 50 )))
type_in "$A/lx.console" 'sleep 100000 & SLEEPER=$!; dd if=/dev/urandom of=/tmp/blob bs=1M count=16 2>/dev/null; (while :; do dd if=/dev/urandom of=/tmp/w bs=4k count='"$wpages"' conv=notrunc 2>/dev/null; usleep 200000; done) & echo writer=$((1)) clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)'$'\n'
wait_for "the writer" 60 printed_in "writer=1 .*" $(consoles) || bail "the guest did not start its writer"
state_of "$A" 0 || bail "no state line from the guest"
sleeper=$(field_of 0 pid)
md5=$(field_of 0 md5)
up=$(field_of 0 up)
t_up=$(date +%s)
echo "# the guest: sleeper pid $sleeper, /tmp/blob md5 $md5, uptime $up s," \
	"$(the_line 'writer=1 .*' $(consoles)), writing $wpages pages 5 times a second"
[ -n "$sleeper" ] && [ ${#md5} = 32 ] || bail "the state line is not whole: $(the_line 'st-0 .*' $(consoles))"

# 2-19. Three times there and back: A -> B -> A, three checks each.
from=$A
to=$B
src_pid=$pid
for k in 1 2 3 4 5 6; do
	port=$port_b
	[ "$to" = "$A" ] && port=$port_a
	t1=$(date +%s%N)
	# --auto-converge: whatever the guest's own dirtying on this machine,
	# each move ends; what is checked is what arrives.
	if migrate "$tmp/m$k.out" --rundir "$from" --auto-converge lx "127.0.0.1:$port" && running "$to/lx.sock" &&
	   ! answers "$from/lx.sock"; then
		tap_ok "move $k (${from##*/} -> ${to##*/}): exit 0, runs there, gone here" \
			"($(( ($(date +%s%N) - t1) / 1000000 )) ms)"
	else
		tap_fail "move $k (${from##*/} -> ${to##*/})" "$(tail -5 "$tmp/m$k.out")"
		if [ -n "${LINUX_MIGRATE_DEBUG:-}" ]; then
			sed 's/^/# m: /' "$tmp/m$k.out"; cat "$tmp"/daemon-a.log "$tmp"/daemon-b.log | sed 's/^/# d: /'
			tail -20 "$tmp/kvm-run.out" | sed 's/^/# r: /'; exit 1
		fi
	fi
	echo "# move $k: $(grep -o 'downtime [^,]*' "$tmp/m$k.out" | head -1)"
	ok_if "move $k: the console socket is ${to##*/}/lx.console, and none is left at ${from##*/}" \
		eval "test -S '$to/lx.console' && test ! -e '$from/lx.console'"
	if state_of "$to" "$k"; then
		now_up=$(field_of "$k" up)
		host_s=$(( $(date +%s) - t_up ))
		if [ "$(field_of "$k" pid)" = "$sleeper" ] && [ "$(field_of "$k" md5)" = "$md5" ] &&
		   [ "$now_up" -ge "$up" ] && [ $(( now_up - up )) -le $(( host_s * 3 / 2 + 2 )) ]; then
			tap_ok "move $k: typed at ${to##*/}'s console: pid $sleeper lives, same md5, uptime $up -> $now_up s (host: +$host_s s)"
		else
			tap_fail "move $k: the guest's state differs" "$(the_line "st-$k .*" $(consoles))" \
				"wanted pid=$sleeper md5=$md5 up>=$up (host +$host_s s)"
		fi
		up=$now_up
		t_up=$(date +%s)
	else
		tap_fail "move $k: no answer at ${to##*/}'s console" "$(tail -3 "$tmp/m$k.out")"
	fi
	t=$from; from=$to; to=$t
done
wait "$src_pid" && st=0 || st=$?
ok_if "the first source (kvm-run) ended with status 0 ($st)" [ "$st" = 0 ]

# 21-25. A live snapshot of the guest where it is now (A), then the VM is
# stopped and restored from it by kvm-run.
snap="$tmp/snap"
r=$(q "$A/lx.sock" "{\"execute\": \"checkpoint-save\", \"arguments\": {\"dir\": \"$snap\"}}" 2>&1)
state_of "$A" 7 || true
ok_if "a live snapshot of the Linux guest is written, and the guest runs on" \
	eval 'printf "%s" "$r" | grep -q "\"return\"" && [ "$(field_of 7 pid)" = "$sleeper" ]'
quit_vm "$A/lx.sock"
gone_a() { ! answers "$A/lx.sock" && [ ! -e "$A/lx.console" ]; }
ok_if "quit: the VM at A stops, its sockets go" wait_for "the VM at A to stop" 60 gone_a
"$KVM_RUN" --name lx --rundir "$A" --restore "$snap" --console "$CON/restored.console" \
	>"$tmp/restored.out" 2>&1 &
rpid=$!
pids+=($rpid)
ok_if "kvm-run --restore: the guest runs again, its console socket is back" \
	wait_for "the restored VM" 60 eval "running '$A/lx.sock' && test -S '$A/lx.console'"
if state_of "$A" 8; then
	if [ "$(field_of 8 pid)" = "$sleeper" ] && [ "$(field_of 8 md5)" = "$md5" ] &&
	   [ "$(field_of 8 up)" -ge "$up" ]; then
		tap_ok "restored: pid $sleeper lives, same md5, uptime $(field_of 8 up) s >= $up s"
	else
		tap_fail "restored: the guest's state differs" "$(the_line 'st-8 .*' $(consoles))"
	fi
else
	tap_fail "restored: no answer at the console" "$(tail -5 "$tmp/restored.out")"
fi
type_in "$A/lx.console" $'poweroff -f\n'
gone_r() { ! kill -0 "$rpid" 2>/dev/null; }
if wait_for "the restored VM to power off" 60 gone_r; then
	wait "$rpid" && st=0 || st=$?
	ok_if "the restored guest powers off: kvm-run ends with status 0 ($st)" [ "$st" = 0 ]
else
	tap_fail "the restored guest did not power off" "$(tail -5 "$tmp/restored.out")"
fi
