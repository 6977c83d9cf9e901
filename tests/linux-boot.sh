#!/bin/bash
# kvm-run boots a real Linux kernel (Debian's, from /boot) with a busybox
# initramfs: the init marker on the console, a command typed into the
# console socket and its answer, every vCPU in /proc/cpuinfo, the kmwork
# workload (guest-linux/kmwork.c) writing and checking its pages, poweroff
# ending kvm-run with status 0, a reboot (reboot=k) too; the same kernel as
# an ELF vmlinux; and bad input refused clearly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-linux.sh"

kernel=$linux_kernel
KMWORK="$top_builddir/guest-linux/kmwork"
[ -x "$KMWORK" ] || bail "$KMWORK is not built"
# The kernel as an ELF vmlinux, taken out of the bzImage here, before the
# sandbox: decompressing there is emulated and slow, and the build
# directory is shared with it. Kept from run to run while the bzImage is
# not newer. No tool for it: those checks are skipped, saying why.
vmlinux="$top_builddir/tests/linux-boot.vmlinux"
vmlinux_why=
if [ ! -s "$vmlinux" ] || [ "$kernel" -nt "$vmlinux" ]; then
	vmlinux_why=$(bash "$top_srcdir/tests/lib/extract-vmlinux.sh" "$kernel" "$vmlinux" 2>&1) ||
		{ rm -f "$vmlinux"; [ -n "$vmlinux_why" ] || vmlinux_why="extract-vmlinux.sh failed"; }
fi
require_linux

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_plan 28
echo "# kernel $kernel"
bash "$top_srcdir/tests/lib/make-initramfs.sh" --kmwork "$KMWORK" "$tmp/initrd.cpio.gz" \
	KVM-MIGRATE-INIT || bail "cannot make the initramfs"
# skip N WHY: N checks skipped, with the reason.
skip() {
	local i
	for i in $(seq "$1"); do TAP_N=$((TAP_N + 1)); echo "ok $TAP_N # SKIP $2"; done
}

# 1-4. Bad input: each refused with the reason, before any guest runs.
echo "this is not a kernel" > "$tmp/not-a-kernel"
check "a file that is not a kernel: clear error, exit 3" 3 "not a Linux bzImage" \
	timeout 60 "$KVM_RUN" --kernel "$tmp/not-a-kernel"
check "a missing initrd: clear error, exit 3" 3 "initrd $tmp/nosuch: No such file" \
	timeout 60 "$KVM_RUN" --kernel "$kernel" --initrd "$tmp/nosuch"
check "a command line longer than the kernel takes: exit 3" 3 "--append: 5000 bytes; this kernel takes at most" \
	timeout 60 "$KVM_RUN" --kernel "$kernel" --append "$(printf 'x%.0s' $(seq 5000))"
check "--kernel with --guest: usage error, exit 2" 2 "boots Linux instead of a workload" \
	"$KVM_RUN" --kernel "$kernel" --guest idle

# 5. Boot to the init marker. pci=off: there is no PCI bus, and probing
# for one costs thousands of exits, seconds where every exit is emulated.
run="$tmp/run"
if boot_vm lx "2 vCPUs, kernel messages on" --mem 256M --vcpus 2 --kernel "$kernel" \
	--initrd "$tmp/initrd.cpio.gz" --append "console=ttyS0 pci=off panic=-1"; then
	tap_ok "Linux boots to the initramfs shell: marker after $ms ms"
else
	tap_fail "no init marker on the console"
fi

# A line the guest printed (the echo of what was typed does not match: it holds $(...)).
printed() { tr -d '\r' < "$con" | grep -q "^$1\$"; }

# 6-7. A command over the console socket, and its output.
ok_if "the console socket is RUNDIR/NAME.console" test -S "$run/lx.console"
type_in $'echo ans=$((6 * 7))\n'
ok_if "a command typed into the console socket runs: its output on the console" \
	wait_for "the command's output" 60 printed "ans=42"

# 8. Every vCPU, as the guest sees it.
type_in $'echo cpus=$(grep -c ^processor /proc/cpuinfo)\n'
ok_if "the guest sees both vCPUs in /proc/cpuinfo (cpus=2)" \
	wait_for "the vCPU count" 60 printed "cpus=2"

# 9-10. A failed migration leaves the guest running; a live snapshot is
# written (tests/linux-migrate.sh moves and restores one).
"$QMP_SEND" "$run/lx.sock" '{"execute": "migrate", "arguments": {"uri": "unix:/nonexistent"}}' >/dev/null 2>&1
mig_failed() {
	"$QMP_SEND" "$run/lx.sock" '{"execute": "query-migrate"}' 2>/dev/null |
		grep -q '"status": *"failed"'
}
wait_for "the migration to fail" 60 mig_failed
type_in $'echo alive=$((40 + 2))\n'
ok_if "a migration to nowhere fails, and the guest runs on" \
	eval 'mig_failed && wait_for "the guest to answer" 60 printed "alive=42"'
r=$("$QMP_SEND" "$run/lx.sock" "{\"execute\": \"checkpoint-save\", \"arguments\": {\"dir\": \"$tmp/snap\"}}" 2>&1)
type_in $'echo still=$((40 + 3))\n'
ok_if "a live snapshot is written, and the guest runs on" \
	eval 'printf "%s" "$r" | grep -q "\"return\"" && [ -d "$tmp/snap" ] &&
	      wait_for "the guest to answer" 60 printed "still=43"'

# 11-15. kmwork, the Linux guests' workload: a daemon writing 8 MiB of
# pages at 200 a second, checked twice (no page bad, time never backwards,
# more writes by the same daemon), then corrupted behind its back (one
# byte, no new version), which the next check must find; then stopped.
# Its answers start with KMWORK, which the echo of the typed (lower-case)
# command line never does.
# kmline N WORD: the Nth console line "KMWORK WORD ...", if there is one.
kmline() { tr -d '\r' < "$con" | grep "^KMWORK $2" | sed -n "$1p"; }
has_kmline() { [ -n "$(kmline "$1" "$2")" ]; }
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
type_in $'kmwork start --mib 8 --rate 200\n'
wait_for "kmwork to start" 60 has_kmline 1 started
s=$(kmline 1 started)
kpid=$(field pid "$s")
ok_if "kmwork start: a daemon, ready: $s" \
	eval 'printf "%s\n" "$s" | grep -Eq "^KMWORK started pid=[0-9]+ pages=2048 rate=200$"'
re="^KMWORK check pid=$kpid pages=2048 bad=0 writes=[0-9]+ backwards=0 max_gap_ms=[0-9]+ uptime_s=[0-9]+$"
type_in $'kmwork check\n'
wait_for "kmwork's check" 60 has_kmline 1 check
c1=$(kmline 1 check)
ok_if "kmwork check: every page as its version says ($c1)" \
	eval 'printf "%s\n" "$c1" | grep -Eq "$re"'
type_in $'sleep 1; kmwork check\n'
wait_for "kmwork's second check" 60 has_kmline 2 check
c2=$(kmline 2 check)
ok_if "a second check: the same daemon wrote more, none bad ($c2)" \
	eval 'printf "%s\n" "$c2" | grep -Eq "$re" &&
	      [ "$(field writes "$c2")" -gt "$(field writes "$c1")" ]'
# A live snapshot of the guest with kmwork running (restored at 19-20).
rk=$("$QMP_SEND" "$run/lx.sock" "{\"execute\": \"checkpoint-save\", \"arguments\": {\"dir\": \"$tmp/snapk\"}}" 2>&1)
type_in $'kmwork corrupt 100; kmwork check\n'
wait_for "the check after corrupt" 60 has_kmline 3 check
c3=$(kmline 3 check)
ok_if "a byte flipped behind its back: the check finds it (bad=1 first_bad=100)" \
	eval 'kmline 1 corrupted | grep -q "^KMWORK corrupted pid=$kpid page=100$" &&
	      printf "%s\n" "$c3" | grep -Eq "^KMWORK check pid=$kpid pages=2048 bad=1 .* first_bad=100$"'
type_in $'kmwork stop; kmwork check\n'
wait_for "kmwork to stop" 60 has_kmline 4 check
ok_if "kmwork stop: the daemon ends, and check then says no daemon" \
	eval 'kmline 1 stopped | grep -Eq "^KMWORK stopped pid=$kpid writes=[0-9]+$" &&
	      [ "$(kmline 4 check)" = "KMWORK check: no daemon" ]'

# 16-18. poweroff -f ends kvm-run with status 0, and its socket goes.
vm_end "poweroff -f" "poweroff -f"
ok_if "the log says the guest powered off" grep -q "the guest powered off" "$tmp/lx.out"
ok_if "the console socket is removed at exit" test ! -e "$run/lx.console"
if [ -n "$pid" ] || ! grep -q "reboot: Power down" "$con"; then
	echo "# console tail:"; tail -5 "$con" | sed 's/^/#   /'
fi

# 19-20. The live snapshot taken while kmwork ran, restored by kvm-run:
# the same daemon (pid) goes on writing, every page as its version says,
# its clock never went back; poweroff ends the restored VM with 0.
con="$tmp/console-restored.log"
"$KVM_RUN" --name lxr --rundir "$run" --restore "$tmp/snapk" --console "$con" \
	>"$tmp/kvm-run-r.out" 2>&1 &
pid=$!
vm=lxr
restored_up() { test -S "$run/lxr.console"; }
if printf '%s' "$rk" | grep -q '"return"' && wait_for "the restored VM" 60 restored_up; then
	type_in $'kmwork check\n'
	wait_for "kmwork's check after the restore" 60 has_kmline 1 check
	cr=$(kmline 1 check)
	ok_if "restored from a live snapshot: kmwork's daemon goes on, none bad ($cr)" \
		eval 'printf "%s\n" "$cr" | grep -Eq "$re" &&
		      [ "$(field writes "$cr")" -gt "$(field writes "$c2")" ]'
else
	tap_fail "the live snapshot with kmwork running, restored" "$rk" "$(tail -5 "$tmp/kvm-run-r.out")"
fi
vm_end "the restored guest powers off" "poweroff -f"

# 21-23. A second boot, quiet (the kernel's messages are most of the
# console's exits) and with reboot=k: reboot -f ends kvm-run with 0 too.
if boot_vm lx2 "1 vCPU, quiet" --mem 256M --kernel "$kernel" --initrd "$tmp/initrd.cpio.gz" \
	--append "console=ttyS0 pci=off quiet reboot=k"; then
	tap_ok "a quiet boot reaches the marker after $ms ms"
else
	tap_fail "quiet boot: no init marker"
fi
vm_end "reboot -f (reboot=k)" "reboot -f"
ok_if "the log says the guest reset the machine" grep -q "the guest reset the machine" "$tmp/lx2.out"

# 24-25. An ELF vmlinux that is cut short, or for another machine: refused,
# saying why, before any guest runs.
if [ -n "$vmlinux_why" ]; then
	skip 5 "no vmlinux: $vmlinux_why"
	exit 0
fi
head -c 4096 "$vmlinux" > "$tmp/vmlinux.short"
check "a truncated ELF vmlinux: clear error, exit 3" 3 "truncated ELF file \\(segment [0-9]+: [0-9]+ bytes from byte" \
	timeout 60 "$KVM_RUN" --kernel "$tmp/vmlinux.short"
# e_machine (2 bytes at 18) made EM_AARCH64 (183).
cp "$tmp/vmlinux.short" "$tmp/vmlinux.arm"
printf '\267\000' | dd of="$tmp/vmlinux.arm" bs=1 seek=18 conv=notrunc status=none
check "an ELF file of another machine: clear error, exit 3" 3 "an ELF file, but not for x86-64 .*machine 183" \
	timeout 60 "$KVM_RUN" --kernel "$tmp/vmlinux.arm"

# 26-28. The same kernel as an ELF vmlinux (as Firecracker boots it): its
# segments at their physical addresses, entered at startup_64, quiet; on
# 2 vCPUs, so that the second one's start (INIT/SIPI into the kernel's
# real-mode trampoline) is tried with this loader too.
if boot_vm lx3 "the vmlinux, 2 vCPUs, quiet" --mem 256M --vcpus 2 --kernel "$vmlinux" \
	--initrd "$tmp/initrd.cpio.gz" --append "console=ttyS0 pci=off quiet" &&
   grep -q "^KVM-MIGRATE-INIT .* cpus 2" "$con"; then
	tap_ok "an ELF vmlinux boots to the marker, both vCPUs up, after $ms ms"
else
	tap_fail "vmlinux boot: no init marker with both vCPUs"
fi
ok_if "the log says how: ELF vmlinux, its segments and entry" \
	grep -Eq "ELF vmlinux, [0-9]+ PT_LOAD segments at 0x[0-9a-f]+-0x[0-9a-f]+, entry 0x" "$tmp/lx3.out"
vm_end "poweroff -f of the vmlinux" "poweroff -f"
