#!/bin/bash
# Checkpoints survive what breaks them (docs/format.md s.9): kvm-run killed
# at each named step of a commit and of a pruning (KVM_MIGRATE_STORE_CRASH,
# test builds) and at random instants while it writes; a flipped byte and a
# truncation in a checkpoint file. After each, every listed checkpoint
# verifies, the newest restores to the memory it was taken from, nothing
# half-written is listed, and a damaged file stops only the restores that
# need it, with its name.
. "$(dirname "$0")/lib.sh"
require_kvm
. "$(dirname "$0")/lib-migrate.sh"
. "$(dirname "$0")/lib-checkpoint.sh"

POINTS="after-tmp-write after-fsync after-rename after-dir-fsync mid-manifest-write
	after-manifest-write after-manifest-rename after-manifest-fsync mid-remove after-remove"
KILLS=3
tap_plan $(( 3 + 10 + 2 * KILLS + 6 ))

run="$tmp/run"
ck="$tmp/ck"
PAGES=$(wss_pages 32)
RATE=$(rate_of 20000 1)

listed() { "$KVM_SNAPSHOT" list --json "$1" 2>/dev/null | grep -o '"id": *[0-9]*' | grep -o '[0-9]*$'; }
newest() { listed "$1" | sort -n | tail -1; }
n_vm=0
# restore_hash SPEC: the memory hash of a paused restore of SPEC (empty if it fails).
restore_hash() {
	local name="h$((n_vm += 1))" h
	"$KVM_RUN" --name "$name" --rundir "$run" --restore "$1" --paused >"$tmp/vm-$name.log" 2>&1 &
	pids+=($!)
	wait_for "restore $1" 30 answers "$run/$name.sock" >/dev/null || return 0
	h=$(field "$(q "$run/$name.sock" '{"execute": "query-memory-hash"}')" hash)
	quit_vm "$run/$name.sock"
	wait_for "$name to stop" 30 eval '! kill -0 '"${pids[-1]}" >/dev/null
	echo "$h"
}

# 1-3. A base and two increments of a writing guest, with their memory hashes.
start_vm s1 "$run" "$RATE" "$PAGES" --mem 128M --checkpoint-dir "$ck"
ckpt "$run/s1.sock" '{"hash": true}'
base=$(field "$reply" id) base_hash=$(field "$reply" memory-hash)
ckpt "$run/s1.sock" '{}'
ckpt "$run/s1.sock" '{"hash": true}'
incr=$(field "$reply" id) H=$(field "$reply" memory-hash)
ok_if "a base ($base) and increments up to $incr" eval '[ -n "$H" ] && [ "$(newest "$ck")" = "$incr" ]'
quit_vm "$run/s1.sock"
wait_for "s1 to stop" 30 eval '! kill -0 '"$vm_pid"
check "kvm-snapshot verify: all good" 0 "" "$KVM_SNAPSHOT" verify "$ck"
ok_if "the newest restores to its memory" eval '[ "$(restore_hash "$ck")" = "$H" ]'

# 4-13. SIGKILL at each step. A paused restore of the newest takes a base
# of the same memory (hash H) and dies at the step; with --checkpoint-keep 1
# the pruning of the older chain that follows a commit is a step too.
if ! strings "$KVM_RUN" | grep -q after-manifest-rename; then
	for p in $POINTS; do tap_ok "# SKIP $p: this build has no fault injection (--enable-fault-injection)"; done
else
	for p in $POINTS; do
		name="k$((n_vm += 1))"
		KVM_MIGRATE_STORE_CRASH=$p "$KVM_RUN" --name "$name" --rundir "$run" --restore "$ck" \
			--paused --checkpoint-dir "$ck" --checkpoint-keep 1 >"$tmp/vm-$name.log" 2>&1 &
		kpid=$!
		pids+=($kpid)
		wait_for "$name" 30 answers "$run/$name.sock"
		q "$run/$name.sock" '{"execute": "checkpoint", "arguments": {"full": true}}' >/dev/null 2>&1
		wait "$kpid" 2>/dev/null
		st=$?
		verify=$("$KVM_SNAPSHOT" verify "$ck" 2>&1) && vst=0 || vst=$?
		got=$(restore_hash "$ck")
		if [ "$st" = 137 ] && [ "$vst" = 0 ] && [ "$got" = "$H" ]; then
			tap_ok "killed at $p: every listed checkpoint verifies, the newest ($(newest "$ck")) restores"
		else
			tap_fail "killed at $p" "kvm-run exit $st (wanted 137: SIGKILL)" \
				"verify exit $vst: $verify" "restored hash '$got', wanted $H"
		fi
		"$KVM_SNAPSHOT" gc "$ck" >/dev/null 2>&1
	done
fi

# 14-. SIGKILL at random instants while periodic checkpoints of a writing guest go on.
for i in $(seq 1 $KILLS); do
	name="w$i"
	VM_PAGES[$name]=$PAGES
	"$KVM_RUN" --name "$name" --rundir "$run" --restore "$ck" --checkpoint-dir "$ck" \
		--checkpoint-every "$(pace_time 50)" >"$tmp/vm-$name.log" 2>&1 &
	kpid=$!
	pids+=($kpid)
	# The newest may have been taken of a stopped VM: then it restores stopped.
	wait_for "$name" 30 answers "$run/$name.sock"
	q "$run/$name.sock" '{"execute": "cont"}' >/dev/null
	wait_for "$name checkpointing" 60 eval \
		'[ "$(field "$(q "'"$run/$name.sock"'" "{\"execute\": \"query-checkpoints\"}")" taken)" -ge 1 ]'
	# A random instant within the next few checkpoints (bash's RANDOM, not a sync: any will do).
	sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
	kill -KILL "$kpid"
	wait "$kpid" 2>/dev/null
	check "killed while writing ($i): every listed checkpoint verifies" 0 "" \
		"$KVM_SNAPSHOT" verify "$ck"
	name="v$i"
	VM_PAGES[$name]=$PAGES
	"$KVM_RUN" --name "$name" --rundir "$run" --restore "$ck" >"$tmp/vm-$name.log" 2>&1 &
	pids+=($!)
	wait_for "$name" 30 answers "$run/$name.sock"
	q "$run/$name.sock" '{"execute": "cont"}' >/dev/null
	if wait_for "$name" 30 progress_above "$run/$name.sock" 0 && vm_ok "$run/$name.sock"; then
		tap_ok "killed while writing ($i): the newest restores, every page right"
	else tap_fail "killed while writing ($i): the newest restores, every page right" \
		"$(tail -3 "$tmp/vm-$name.log")"; fi
	quit_vm "$run/$name.sock"
done

# Damage: a chain base <- a <- b in a fresh directory.
dk="$tmp/dk"
start_vm d1 "$run" "$RATE" "$PAGES" --mem 128M --checkpoint-dir "$dk"
ckpt "$run/d1.sock" '{"hash": true}'
db=$(field "$reply" id) db_hash=$(field "$reply" memory-hash)
ckpt "$run/d1.sock" '{"hash": true}'
da=$(field "$reply" id) da_hash=$(field "$reply" memory-hash)
ckpt "$run/d1.sock" '{}'
dbb=$(field "$reply" id)
quit_vm "$run/d1.sock"
wait_for "d1 to stop" 30 eval '! kill -0 '"$vm_pid"
fa=$(printf 'ckpt-%08d.kmc' "$da")
fb=$(printf 'ckpt-%08d.kmc' "$dbb")
size=$(stat -c %s "$dk/$fb")
printf '\xff' | dd of="$dk/$fb" bs=1 seek=$(( size / 2 )) conv=notrunc status=none
check "a flipped byte: verify names the file and the record" 1 "$fb.*record [0-9]+" \
	"$KVM_SNAPSHOT" verify "$dk"
check "a flipped byte: restoring that checkpoint is refused, naming file and record" 3 \
	"$fb: record [0-9]+" "$KVM_RUN" --restore "$dk@$dbb"
ok_if "a flipped byte: its parent, which does not need it, still restores" \
	eval '[ "$(restore_hash "$dk@$da")" = "$da_hash" ]'
size=$(stat -c %s "$dk/$fa")
truncate -s $(( size - 100 )) "$dk/$fa"
check "a truncation: verify names the file" 1 "$fa" "$KVM_SNAPSHOT" verify "$dk"
check "a truncation: restoring it is refused, naming the file" 3 "$fa.*(ends in the middle|record)" \
	"$KVM_RUN" --restore "$dk@$da"
ok_if "a truncation: the base still restores" eval '[ "$(restore_hash "$dk@$db")" = "$db_hash" ]'
