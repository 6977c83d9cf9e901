#!/bin/bash
# A booted Linux guest moves between two kvm-migrated daemons (loopback
# TLS) three times there and back while a process in it rewrites memory
# and another writes its virtio disk (shared storage: one image file).
# After each move: the same processes (a sleeper's PID answers kill -0),
# the same memory (the md5 of a 16 MiB file in the guest's tmpfs), a
# clock that went on (uptime never back, and not far ahead of the host's
# time, as a unit slip in moving the clock on by the downtime would put
# it: in the sandbox the guest's uptime gained up to 7 s on the host's 31
# between two readings), the console socket under the VM's name at the
# destination, answering there, the copy left behind gone, and the disk's
# lock with the copy that runs. At the end the image holds exactly what
# the guest wrote; a live snapshot holds the disk (every block;
# linux-checkpoint.sh restores checkpoints of a guest with a writable disk);
# and a destination that cannot open the disk refuses the VM, which runs
# on at its source.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-linux.sh"
require_linux --disk
. "$(dirname "$0")/lib-migrate.sh"

tap_plan 28
echo "# kernel $linux_kernel"
bash "$top_srcdir/tests/lib/make-initramfs.sh" --modules "$linux_kver=virtio_mmio,virtio_blk" \
	--kmwork "$top_builddir/guest-linux/kmwork" \
	"$tmp/initrd.cpio.gz" KVM-MIGRATE-INIT || bail "cannot make the initramfs"
mkdir "$tmp/disks"
img="$tmp/disks/disk.img"
truncate -s 16M "$img"

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
	--disk "$img" --console "$CON/boot.console" >"$tmp/kvm-run.out" 2>&1 &
pid=$!
pids+=($pid)
if wait_for "the init marker" 120 grep -q "^KVM-MIGRATE-INIT " "$CON/boot.console"; then
	tap_ok "Linux boots at A: marker after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
else
	bail "no init marker: $(tail -5 "$CON/boot.console" 2>/dev/null) $(tail -3 "$tmp/kvm-run.out")"
fi
consoles() { printf '%s\n' "$CON"/*.console; }

# The guest's state, in one line: "st-TAG pid=P md5=M up=U km=K" (P only
# if the sleeper still answers kill -0; K kmwork's check line, its spaces
# made commas). Its socket: RUNDIR/lx.console.
state_of() {	# state_of RUNDIR TAG: asks, and waits for the line
	local cmd="echo st-$2 pid=\$(kill -0 \$SLEEPER 2>/dev/null && echo \$SLEEPER)"
	cmd+=" md5=\$(md5sum /tmp/blob | cut -c1-32) up=\$(cut -d. -f1 /proc/uptime)"
	cmd+=" km=\$(kmwork check | tr ' ' ,)"
	console_type "$1/lx.console" "$cmd"$'\n' &&
		wait_for "the guest's state line st-$2" 60 printed_in "st-$2 .*" $(consoles)
}
field_of() { the_line "st-$1 .*" $(consoles) | grep -o " $2=[^ ]*" | cut -d= -f2-; }

# The sleeper, the 16 MiB of data, and kmwork (guest-linux/kmwork.c)
# rewriting 8 MiB of pages (the pages every pre-copy round finds dirty
# again) at about a tenth of what the link carries.
# On the disk: its first MiB is the first MiB of /tmp/blob (its md5
# printed), and a disk writer rewrites 16 KiB of the next MiB five times a
# second with fsync.
wpages=$(sized 256 $(( T / 50 )))
console_type "$A/lx.console" 'sleep 100000 & SLEEPER=$!; dd if=/dev/urandom of=/tmp/blob bs=1M count=16 2>/dev/null; kmwork start --mib 8 --rate '"$(( wpages * 5 ))"' >/dev/null; dd if=/tmp/blob of=/dev/vda bs=1M count=1 conv=fsync 2>/dev/null; (i=0; while :; do i=$((i + 1)); dd if=/dev/urandom of=/dev/vda bs=4k count=4 seek=$((256 + i % 64 * 4)) conv=fsync 2>/dev/null; usleep 200000; done) & DW=$!; echo writer=$((1)) disk0=$(dd if=/tmp/blob bs=1M count=1 2>/dev/null | md5sum | cut -c1-32) clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)'$'\n'
wait_for "the writer" 60 printed_in "writer=1 .*" $(consoles) || bail "the guest did not start its writer"
state_of "$A" 0 || bail "no state line from the guest"
sleeper=$(field_of 0 pid)
md5=$(field_of 0 md5)
up=$(field_of 0 up)
t_up=$(date +%s)
echo "# the guest: sleeper pid $sleeper, /tmp/blob md5 $md5, uptime $up s," \
	"$(the_line 'writer=1 .*' $(consoles)), kmwork writing $(( wpages * 5 )) pages/s"
disk0=$(the_line 'writer=1 .*' $(consoles) | grep -o 'disk0=[0-9a-f]*' | cut -d= -f2)
kmpid=$(field_of 0 km | grep -o 'pid=[0-9]*' | cut -d= -f2)
[ -n "$sleeper" ] && [ ${#md5} = 32 ] && [ ${#disk0} = 32 ] && [ -n "$kmpid" ] || bail "the state line is not whole: $(the_line 'st-0 .*' $(consoles))"

# 2-20. Three times there and back: A -> B -> A, three checks each (and the
# disk's lock after the first).
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
	if [ "$k" = 1 ]; then
		check "move 1: the disk's lock went with the VM: a second kvm-run on the image is refused" \
			3 "another VM uses it" timeout 60 "$KVM_RUN" --kernel "$linux_kernel" --disk "$img"
	fi
	if state_of "$to" "$k"; then
		now_up=$(field_of "$k" up)
		host_s=$(( $(date +%s) - t_up ))
		km=$(field_of "$k" km)
		if [ "$(field_of "$k" pid)" = "$sleeper" ] && [ "$(field_of "$k" md5)" = "$md5" ] &&
		   printf '%s' "$km" | grep -Eq "^KMWORK,check,pid=$kmpid,pages=2048,bad=0,.*,backwards=0," &&
		   [ "$now_up" -ge "$up" ] && [ $(( now_up - up )) -le $(( host_s * 3 / 2 + 2 )) ]; then
			tap_ok "move $k: typed at ${to##*/}'s console: pid $sleeper lives, same md5, kmwork's pages all good ($(printf '%s' "$km" | grep -o 'writes=[0-9]*,backwards=0,max_gap_ms=[0-9]*' | tr , ' ')), uptime $up -> $now_up s (host: +$host_s s)"
		else
			tap_fail "move $k: the guest's state differs" "$(the_line "st-$k .*" $(consoles))" \
				"wanted pid=$sleeper md5=$md5 km: pid=$kmpid bad=0 backwards=0, up>=$up (host +$host_s s)"
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

# 22. A live snapshot holds the writable disk, every block of it; the guest runs on.
r=$(q "$A/lx.sock" "{\"execute\": \"checkpoint-save\", \"arguments\": {\"dir\": \"$tmp/snap\"}}" 2>&1)
state_of "$A" 7 || true
snap_blocks=$(printf '%s' "$r" | grep -o '"disk-blocks": *[0-9]*' | grep -o '[0-9]*$')
ok_if "a live snapshot of the guest with a writable disk holds it (${snap_blocks:-no} blocks, every one of the 4096 at least) and verifies; it runs on" \
	eval '[ "${snap_blocks:-0}" -ge 4096 ] && "$top_builddir/snapshot/kvm-snapshot" verify "$tmp/snap" >/dev/null &&
	      [ "$(field_of 7 pid)" = "$sleeper" ]'

# 23-24. A destination where the disk's path is not there (another mount
# namespace, the image's directory hidden) refuses the VM before any page
# is sent, naming the disk; the guest runs on at A.
C="$tmp/run-c"
mkdir -m 700 "$C"
unshare -m sh -c 'mount -t tmpfs none "$1" && shift && exec "$@"' sh "$tmp/disks" \
	"$KVM_MIGRATED" --listen 127.0.0.1:0 --tls-dir "$tmp/x509" --rundir "$C" \
	>"$tmp/daemon-c.log" 2>&1 &
pids+=($!)
wait_for "daemon c" 10 grep -q "listening on" "$tmp/daemon-c.log" || bail "daemon c did not start"
port_c=$(sed -n 's/.*, port \([0-9]*\),.*/\1/p' "$tmp/daemon-c.log")
migrate "$tmp/mc.out" --rundir "$A" lx "127.0.0.1:$port_c" && st=0 || st=$?
ok_if "to a destination without the disk: refused, naming it (exit $st)" \
	eval '[ "$st" != 0 ] && grep -q "cannot open the VM.s disk $img here" "$tmp/mc.out"'
if state_of "$A" 8 && [ "$(field_of 8 pid)" = "$sleeper" ] && running "$A/lx.sock"; then
	tap_ok "the guest runs on at A, its processes alive"
else
	tap_fail "the guest at A after the refusal" "$(tail -3 "$tmp/mc.out")"
fi

# 25-28. The disk writer stops; what the guest reads back with its page
# cache dropped, and then the image file on the host after it powered
# off, are what it wrote.
console_type "$A/lx.console" 'kill $DW; wait $DW; echo 3 > /proc/sys/vm/drop_caches; echo disk r0=$(dd if=/dev/vda bs=1M count=1 2>/dev/null | md5sum | cut -c1-32) r1=$(dd if=/dev/vda bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -c1-32)'$'\n'
wait_for "the guest's read-back" 60 printed_in "disk r0=.* r1=.*" $(consoles)
line=$(the_line "disk r0=.* r1=.*" $(consoles))
r0=$(printf '%s' "$line" | grep -o 'r0=[0-9a-f]*' | cut -d= -f2)
r1=$(printf '%s' "$line" | grep -o 'r1=[0-9a-f]*' | cut -d= -f2)
ok_if "the guest reads back the first MiB it wrote before the moves ($r0)" [ "$r0" = "$disk0" ]
console_type "$A/lx.console" $'poweroff -f\n'
gone_a() { ! answers "$A/lx.sock" && [ ! -e "$A/lx.console" ]; }
ok_if "poweroff -f at A: the VM ends, its sockets go" wait_for "the VM at A to end" 60 gone_a
ok_if "the image's first MiB is what the guest wrote" \
	[ "$(dd if="$img" bs=1M count=1 2>/dev/null | md5sum | cut -c1-32)" = "$disk0" ]
ok_if "the image's second MiB, rewritten through six moves, is what the guest read back ($r1)" \
	[ "$(dd if="$img" bs=1M skip=1 count=1 2>/dev/null | md5sum | cut -c1-32)" = "$r1" ]
