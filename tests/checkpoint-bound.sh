#!/bin/bash
# Checkpoints cost what the guest does, not what it has: an idle 4 GiB
# guest's base is under 1 MiB and restores byte for byte. And the pause
# of a checkpoint stays bounded whatever the guest does
# (snapshot/checkpoint.h): a verify guest writing as fast as it can over a
# working set several times larger than what a pause copies
# (CKPT_PAUSE_PAGES, 2048) is throttled during the pre-copy when it
# outruns it, so that no checkpoint, base or increment, copies more than
# that in its pause; the throttle is lifted after, and the checkpoints
# restore with every page right.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"
. "$(dirname "$0")/lib-checkpoint.sh"

tap_plan 10

A=$tmp/a
ck="$tmp/ck"
BOUND=2048
PAGES=8192	# 32 MiB: four times the bound, whatever the pace

# bounded WHAT: the last reply's pause copied at most BOUND pages.
bounded() {
	local n
	n=$(field "$reply" pause-pages)
	if [ -n "$n" ] && [ "$n" -le "$BOUND" ]; then
		tap_ok "$1: $n pages in the pause, $(field "$reply" pause-ms) ms, after $(field "$reply" rounds) rounds, throttled up to $(field "$reply" throttle-percentage) %"
	else tap_fail "$1: at most $BOUND pages in the pause" "$reply"; fi
}

# rate 0: as fast as the vCPUs can write.
start_vm w1 "$A" 0 "$PAGES" --mem 128M --vcpus 2 --checkpoint-dir "$ck"
ckpt "$A/w1.sock" '{}'
bounded "a base of a guest writing as fast as it can"
ckpt "$A/w1.sock" '{}'
bounded "an increment of it"
ckpt "$A/w1.sock" '{"hash": true}'
bounded "another, with the memory hash"
id=$(field "$reply" id) want=$(field "$reply" memory-hash)
ok_if "the throttle is lifted after: the VM runs" running "$A/w1.sock"
p0=$(progress "$A/w1.sock")
ok_if "and the guest goes on writing" wait_for "progress" 30 progress_above "$A/w1.sock" "$p0"
ok_if "its pages all check" vm_ok "$A/w1.sock"
quit_vm "$A/w1.sock"

VM_PAGES[r1]=$PAGES
"$KVM_RUN" --name r1 --rundir "$A" --restore "$ck@$id" --paused >"$tmp/vm-r1.log" 2>&1 &
pids+=($!)
wait_for "r1" 30 answers "$A/r1.sock"
got=$(field "$(q "$A/r1.sock" '{"execute": "query-memory-hash"}')" hash)
ok_if "the last one restores byte for byte (hash $got)" [ "$got" = "$want" ]
q "$A/r1.sock" '{"execute": "cont"}' >/dev/null
ok_if "and its guest checks every page right" vm_ok "$A/r1.sock"
quit_vm "$A/r1.sock"

# 9-10. A 4 GiB guest that writes 16 pages (a verify guest at 1 page/s):
# its base holds what it wrote, not its size.
start_vm i1 "$A" 1 16 --mem 4G --checkpoint-dir "$tmp/idle"
if ckpt "$A/i1.sock" '{"hash": true}' && [ "$(field "$reply" bytes)" -lt 1048576 ]; then
	tap_ok "the base of a nearly idle 4 GiB guest is under 1 MiB ($(field "$reply" bytes) bytes)"
else tap_fail "the base of a nearly idle 4 GiB guest is under 1 MiB" "$reply"; fi
want=$(field "$reply" memory-hash)
quit_vm "$A/i1.sock"
"$KVM_RUN" --name i2 --rundir "$A" --restore "$tmp/idle" --paused >"$tmp/vm-i2.log" 2>&1 &
pids+=($!)
wait_for "i2" 30 answers "$A/i2.sock"
got=$(field "$(q "$A/i2.sock" '{"execute": "query-memory-hash"}')" hash)
ok_if "and restores byte for byte (hash $got)" [ "$got" = "$want" ]
quit_vm "$A/i2.sock"
