#!/bin/bash
# Checkpoints of a booted Linux guest with a writable virtio disk carry the
# disk (REC_DISK_BLOCKS). The guest runs kmwork (pages with versions), a
# sleeper, and a disk writer that stamps blocks 0..31 of /dev/vda with
# version 1, 2, 3... (kmwork disk-write, O_DIRECT and fsync), reads each
# version back (disk-verify) and only then notes it in guest memory
# (/tmp/dv), logging any disagreement to /tmp/dbad. A base and two
# increments are taken while it writes; the VM quits after the writer went
# on. Then:
# - the middle checkpoint is restored (paused first) into the image: it
#   holds the disk of that instant: every block whole, of the one or two
#   versions the writer had between just before and just after the
#   checkpoint, not the later one it held when the VM quit; then running:
#   the same sleeper and kmwork daemon (none of its pages bad) go on, and
#   the writer's own read-backs, which compare the disk with the version
#   its memory holds, find no disagreement over two more versions; while
#   it runs, a restore onto its image is refused and writes nothing;
# - the newest is restored with --restore-disk FILE: FILE is made and holds
#   that instant's disk, the image is not touched, the guest goes on the
#   same way on FILE;
# - kvm-snapshot verify passes, inspect shows the disk blocks; compaction
#   makes a base of every block that restores the same disk; a
#   disk-block record with a flipped byte is refused by verify and by a
#   restore, naming the record, which leaves no trace: neither the FILE
#   of --restore-disk it made nor a partly restored image (the blocks go
#   to a file beside it, renamed over it only at the end); a file torn
#   inside one, by verify.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-linux.sh"
KMWORK="$top_builddir/guest-linux/kmwork"
KVM_SNAPSHOT="$top_builddir/snapshot/kvm-snapshot"
[ -x "$KMWORK" ] || bail "$KMWORK is not built"
require_linux --disk

tmp=$(mktemp -d)
pid=
pids=()
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_plan 25
echo "# kernel $linux_kernel"
bash "$top_srcdir/tests/lib/make-initramfs.sh" --modules "$linux_kver=virtio_mmio,virtio_blk" \
	--kmwork "$KMWORK" "$tmp/initrd.cpio.gz" KVM-MIGRATE-INIT || bail "cannot make the initramfs"
img="$tmp/disk.img"
truncate -s 8M "$img"
nblocks=2048		# of 4 KiB: the whole image, what a base holds
wblocks=32		# what the writer stamps
run="$tmp/run"
ck="$tmp/ck"
mkdir -m 700 "$run"

# The image as the host reads it: "bad LO HI" of blocks 0..wblocks-1. A
# block read while the guest writes it may read torn: read again (a few
# times) until none is.
img_vers() {
	local i v
	for i in 1 2 3 4 5 6 7 8; do
		v=$("$KMWORK" disk-verify "${1:-$img}" --blocks "$wblocks" |
			sed -n 's/^KMWORK disk-verify .* bad=\([0-9]*\) versions=\([0-9]*\)-\([0-9]*\).*/\1 \2 \3/p')
		[ "${v%% *}" = 0 ] && break
	done
	echo "$v"
}
img_lo() { img_vers | cut -d' ' -f2; }
img_hi() { img_vers | cut -d' ' -f3; }
img_lo_at_least() { [ "$(img_lo)" -ge "$1" ]; }
ckpt() {	# ckpt JSON-ARGS: a checkpoint, its reply in $reply, the image's bounds around it
	local t0=$(date +%s%N)
	lo_pre=$(img_lo)
	reply=$(q "$run/lxc.sock" "{\"execute\": \"checkpoint\", \"arguments\": $1}" 2>&1)
	hi_post=$(img_hi)
	echo "# checkpoint $1: $(( ($(date +%s%N) - t0) / 1000000 )) ms wall"
}
jfield() { printf '%s' "$reply" | grep -o "\"$1\": *[0-9a-z.\"]*" | head -1 | sed 's/.*: *//; s/"//g'; }

# vm_quit DESC: the VM ($pid, $vm) quits by its control socket; one check: status 0.
vm_quit() {
	local st
	q "$run/$vm.sock" '{"execute": "quit"}' >/dev/null 2>&1
	if wait_for "kvm-run $vm to end" 60 gone; then
		wait "$pid" && st=0 || st=$?
		pid=
		ok_if "$1: kvm-run ends with status 0 ($st)" [ "$st" = 0 ]
	else
		tap_fail "$1: kvm-run $vm still runs after quit"
	fi
}

# 1. Boot with the disk and a checkpoint directory.
if boot_vm lxc "1 vCPU, quiet, a writable disk" --mem 256M --kernel "$linux_kernel" \
	--initrd "$tmp/initrd.cpio.gz" --append "console=ttyS0 pci=off quiet panic=-1" \
	--disk "$img" --checkpoint-dir "$ck"; then
	tap_ok "Linux boots with a writable disk and --checkpoint-dir (no refusal): marker after $ms ms"
else
	bail "no init marker"
fi
pids+=("$pid")

# The guest's work: a sleeper, kmwork, the disk writer.
type_in 'sleep 100000 & S=$!; kmwork start --mib 8 --rate 200 >/dev/null; (v=0; while :; do v=$((v + 1)); kmwork disk-write /dev/vda --blocks '"$wblocks"' --version $v >/dev/null || break; kmwork disk-verify /dev/vda --blocks '"$wblocks"' >/tmp/dvl; grep -q " bad=0 versions=$v-$v\$" /tmp/dvl || cat /tmp/dvl >>/tmp/dbad; echo $v >/tmp/dv; done) >/dev/null 2>&1 & echo work=$((1)) s=$S'$'\n'
wait_for "the guest's work" 60 printed_in "work=1 .*" "$con" || bail "the guest did not start its work"
sleeper=$(the_line 'work=1 .*' "$con" | sed -n 's/.* s=\([0-9]*\).*/\1/p')
wait_for "the writer's version 2" 120 img_lo_at_least 2 || bail "the writer does not write: $(img_vers)"

# The guest's state once the writer's memory says at least version $2:
# "st-TAG pid=P dv=V dbad=N km=K" (K kmwork's check line, commas for spaces).
state_line() {	# state_line TAG MIN-VERSION
	type_in "while [ \"\$(cat /tmp/dv)\" -lt $2 ]; do usleep 100000; done; echo st-$1 pid=\$(kill -0 $sleeper 2>/dev/null && echo $sleeper) dv=\$(cat /tmp/dv) dbad=\$(cat /tmp/dbad 2>/dev/null | wc -l) km=\$(kmwork check | tr ' ' ,)"$'\n'
	wait_for "the guest's state line st-$1" 120 printed_in "st-$1 .*" "$con"
}
sfield() { the_line "st-$1 .*" "$con" | grep -o " $2=[^ ]*" | cut -d= -f2-; }
state_line 0 1 || bail "no state line from the guest"
kmpid=$(sfield 0 km | grep -o 'pid=[0-9]*' | cut -d= -f2)
[ -n "$sleeper" ] && [ "$(sfield 0 pid)" = "$sleeper" ] && [ -n "$kmpid" ] ||
	bail "the state line is not whole: $(the_line 'st-0 .*' "$con")"
echo "# the guest: sleeper $sleeper, kmwork $kmpid, the writer at version $(sfield 0 dv)"

# 2-4. A base, then two increments, each after the writer moved on two versions.
ckpt '{"full": true}'
idA=$(jfield id) loA=$lo_pre hiA=$hi_post
ok_if "a base while the writer writes: every block of the disk ($(jfield disk-blocks) of $nblocks, $(jfield pause-blocks) in the pause of $(jfield pause-ms) ms)" \
	eval '[ "$(jfield kind)" = base ] && [ "$(jfield disk-blocks)" -ge $nblocks ]'
wait_for "the writer to go on" 120 img_lo_at_least $((hiA + 1))
ckpt '{}'
idB=$(jfield id) loB=$lo_pre hiB=$hi_post
ok_if "an increment: only blocks written since ($(jfield disk-blocks), $(jfield pause-blocks) in the pause); the writer was at $loB-$hiB" \
	eval '[ "$(jfield kind)" = increment ] && [ "$(jfield disk-blocks)" -gt 0 ] &&
	      [ "$(jfield disk-blocks)" -lt $nblocks ]'
wait_for "the writer to go on" 120 img_lo_at_least $((hiB + 1))
ckpt '{}'
idC=$(jfield id) loC=$lo_pre hiC=$hi_post
ok_if "a second increment ($(jfield disk-blocks) blocks); the writer was at $loC-$hiC" \
	eval '[ "$(jfield kind)" = increment ] && [ "$(jfield disk-blocks)" -gt 0 ] &&
	      [ "$(jfield disk-blocks)" -lt $nblocks ] && [ "$idC" -gt "$idB" ] && [ "$idB" -gt "$idA" ]'
wait_for "the writer to go on" 120 img_lo_at_least $((hiC + 1))

# 5. The VM quits, the writer ahead of every checkpoint.
vm_quit "the guest quits"
fin=$(img_lo)
echo "# the image at the power-off: $(img_vers)"

# 6-7. verify and inspect.
check "kvm-snapshot verify: every checkpoint restores" 0 "" "$KVM_SNAPSHOT" verify "$ck"
ins=$("$KVM_SNAPSHOT" inspect "$ck@$idB" 2>&1)
ok_if "kvm-snapshot inspect shows the increment's disk blocks: $(printf '%s\n' "$ins" | grep '^  disk')" \
	eval 'printf "%s\n" "$ins" | grep -Eq "^  disk +[1-9][0-9]* blocks of 4096 bytes in [0-9]+ records, of a disk of 8388608 bytes"'

# restored TAG ID LO HI [FILE]: the image (or FILE) holds the disk of a
# checkpoint taken while the writer's image was between versions LO and HI:
# every block whole, all of one version or two in a row, within LO..HI, and
# (the image) behind what it held when the first VM quit.
restored() {
	local v behind=$fin
	v=$(img_vers "${5:-$img}")
	[ -z "${5:-}" ] || behind=999999999	# a new FILE: not behind anything
	echo "# after restoring $1 (writer between $3 and $4 then): $v"
	set -- $v "$3" "$4"
	[ "$1" = 0 ] && [ "$2" -ge "$4" ] && [ "$3" -le "$5" ] && [ $(($3 - $2)) -le 1 ] &&
		[ "$3" -lt "$behind" ]
}
# restore_paused NAME SPEC [ARGS]: kvm-run --restore SPEC --paused as NAME.
restore_paused() {
	vm=$1
	con="$tmp/$1.console"
	"$KVM_RUN" --name "$1" --rundir "$run" --restore "$2" --paused --console "$con" "${@:3}" \
		>"$tmp/$1.out" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_for "the restored VM $1" 120 answers_or_gone "$run/$1.sock" && answers "$run/$1.sock"
}
answers_or_gone() { answers "$1" || gone; }
# resumed_ok TAG: cont, then the same sleeper and kmwork daemon, none of its
# pages bad, and two more versions of the writer with no read-back that
# disagreed with its memory.
resumed_ok() {
	local dv0 km
	q "$run/$vm.sock" '{"execute": "cont"}' >/dev/null
	state_line "$1-a" 1 || return 1
	dv0=$(sfield "$1-a" dv)
	state_line "$1-b" $((dv0 + 2)) || return 1
	km=$(sfield "$1-b" km)
	echo "# $1: $(the_line "st-$1-b .*" "$con")"
	[ "$(sfield "$1-b" pid)" = "$sleeper" ] && [ "$(sfield "$1-b" dbad)" = 0 ] &&
		printf '%s\n' "$km" | grep -Eq "^KMWORK,check,pid=$kmpid,pages=2048,bad=0,.*backwards=0"
}

# 8-12. The middle checkpoint, into the image it names; while it runs, a
# restore onto the same image is refused and writes nothing.
if restore_paused lxb "$ck@$idB"; then
	ok_if "restore of the middle checkpoint $idB: the image is its instant's disk" \
		restored B "$idB" "$loB" "$hiB"
	ok_if "it runs on: the same processes, kmwork's pages good, the writer's read-backs agree" \
		resumed_ok B
	q "$run/lxb.sock" '{"execute": "stop"}' >/dev/null
	cp "$img" "$tmp/before.img"
	check "a restore while a VM uses the disk is refused, exit 3" 3 "another VM uses it" \
		timeout 120 "$KVM_RUN" --name lxx --rundir "$run" --restore "$ck@$idA"
	ok_if "the running VM's disk was not written" cmp -s "$img" "$tmp/before.img"
else
	tap_fail "restore of checkpoint $idB" "$(tail -5 "$tmp/lxb.out")"
	tap_fail "it runs on"
	tap_fail "a restore while a VM uses the disk is refused"
	tap_fail "the running VM's disk was not written"
fi
vm_quit "the guest restored from $idB quits"

# 13-17. The newest, with --restore-disk: into a new file, the image the
# checkpoint names left as it is.
cp "$img" "$tmp/before.img"
if restore_paused lxn "$ck" --restore-disk "$tmp/other.img"; then
	ok_if "restore of the newest checkpoint $idC --restore-disk FILE: made, 8 MiB, its instant's disk" \
		eval '[ "$(stat -c %s "$tmp/other.img")" = 8388608 ] && restored C "$idC" "$loC" "$hiC" "$tmp/other.img"'
	cp "$tmp/other.img" "$tmp/c.img"	# checkpoint C's disk, for the compaction (21)
	ok_if "the image the checkpoint names is not touched" cmp -s "$img" "$tmp/before.img"
	ok_if "the VM's disk is FILE" eval 'q "$run/lxn.sock" "{\"execute\": \"query-stats\"}" | grep -q "other.img"'
	ok_if "it runs on: the same processes, kmwork's pages good, the writer's read-backs agree" \
		resumed_ok C
else
	tap_fail "restore of checkpoint $idC" "$(tail -5 "$tmp/lxn.out")"
	tap_fail "the image not touched"
	tap_fail "the VM's disk is FILE"
	tap_fail "it runs on"
fi
vm_quit "the guest restored from $idC quits"

# 18-19. Compaction (of a copy of the store) merges the disk blocks too:
# the base holds every block, and restores the disk C restored (lazily: a
# lazy restore writes the disk eagerly, through the same staged file).
cp -a "$ck" "$tmp/cmp"
"$KVM_SNAPSHOT" compact "$tmp/cmp@$idC" --json >"$tmp/compact.json" 2>&1
idM=$(grep -o '"base": *[0-9]*' "$tmp/compact.json" | grep -o '[0-9]*$')
ins=$("$KVM_SNAPSHOT" inspect "$tmp/cmp@${idM:-0}" 2>&1)
ok_if "compact: the chain of $idC merged into base ${idM:-none}, which verifies and holds every block: $(printf '%s\n' "$ins" | grep '^  disk')" \
	eval '"$KVM_SNAPSHOT" verify "$tmp/cmp" >/dev/null &&
	      printf "%s\n" "$ins" | grep -Eq "^  disk +$nblocks blocks of 4096 bytes"'
if restore_paused lxm "$tmp/cmp" --restore-disk "$tmp/m.img" --lazy; then
	ok_if "the compacted base restores checkpoint $idC's disk (--lazy), byte for byte, nothing left beside it" \
		eval 'cmp "$tmp/m.img" "$tmp/c.img" && ! ls -A "$tmp" | grep -q "^\.m\.img\.restore-"'
	q "$run/lxm.sock" '{"execute": "quit"}' >/dev/null 2>&1
	wait_for "kvm-run lxm to end" 60 gone
else
	tap_fail "restore of the compacted base" "$(tail -5 "$tmp/lxm.out")"
fi

# 20-22. Damage in a disk-block record: a byte flipped in the payload of
# the first REC_DISK_BLOCKS (type 21) of the middle checkpoint's file.
cp -a "$ck" "$tmp/bad"
f=$(printf '%s/ckpt-%08d.kmc' "$tmp/bad" "$idB")
# offset rec: the file offset and index of the first record of type 21.
where=$(perl -e 'open F, "<", $ARGV[0] or die; binmode F; my ($o, $i) = (0, 0);
	while (read(F, my $h, 16) == 16) { my ($t, $l) = unpack "VV", $h;
		if ($t == 21) { print "$o $i\n"; exit } $o += 16 + $l; $i++; seek F, $o, 0 }' "$f")
off=${where% *}
rec=${where#* }
[ -n "$off" ] || bail "no disk-block record in $f"
perl -e 'open F, "+<", $ARGV[0] or die; binmode F; seek F, $ARGV[1], 0; read F, my $b, 1;
	seek F, $ARGV[1], 0; print F chr(ord($b) ^ 0x40)' "$f" $((off + 16 + 8 + 100))
check "verify: the flipped byte in disk-block record $rec of checkpoint $idB is damage, named" 1 \
	"ckpt-0*$idB.kmc.*record $rec" "$KVM_SNAPSHOT" verify "$tmp/bad"
check "a restore from it is refused, naming the file and record, exit 3" 3 \
	"ckpt-0*$idB.kmc.*record $rec" timeout 120 "$KVM_RUN" --name lxd --rundir "$run" \
	--restore "$tmp/bad@$idB" --restore-disk "$tmp/scratch.img"
ok_if "and FILE, which it had made, is gone again" [ ! -e "$tmp/scratch.img" ]
# Into the image the checkpoint names: the base's blocks are written before
# the damage is met, into a file beside the image that is dropped.
cp "$img" "$tmp/before.img"
check "a restore from it into the image is refused too, exit 3" 3 \
	"ckpt-0*$idB.kmc.*record $rec" timeout 120 "$KVM_RUN" --name lxd --rundir "$run" \
	--restore "$tmp/bad@$idB"
ok_if "and the image is as it was, byte for byte, nothing left beside it" \
	eval 'cmp -s "$img" "$tmp/before.img" && ! ls -A "$tmp" | grep -q "^\.disk\.img\.restore-"'
cp "$(printf '%s/ckpt-%08d.kmc' "$ck" "$idB")" "$f"
truncate -s $((off + 16 + 1000)) "$f"
check "verify: a file torn inside its disk-block record is damage" 1 "ckpt-0*$idB.kmc" \
	"$KVM_SNAPSHOT" verify "$tmp/bad@$idB"
