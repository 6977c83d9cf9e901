#!/bin/bash
# The guest SDK (docs/guests.md s.8) as a researcher uses it: the tree is
# installed into a temporary root, the example guest (examples/guest-sdk)
# is copied out of the tree and built there with nothing but pkg-config and
# the installed files, and kvm-run --guest-image runs the image: a run to
# its clean end; progress, dirtying and the guest's own check seen through
# the control socket; a live migration that the image survives with all
# its stamps; and the refusals of images that cannot be (missing, too
# large, empty, an ELF, a kernel).
. "$(dirname "$0")/lib.sh"

# Installing and compiling needs no KVM and is slow under emulation, so it
# happens here, before require_kvm moves the rest into the sandbox (which
# sees this host's /tmp read-only); its outcome becomes TAP lines there.
sdk_prepare() {
	local pc headers h
	# A make of its own, not a part of the make check that runs this test.
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$top_builddir" install \
		DESTDIR="$SDK_WORK/root" >"$SDK_WORK/install.log" 2>&1 || return 1
	pc=$(find "$SDK_WORK/root" -name kvm-migrate-guest.pc) && [ -n "$pc" ] || return 1
	echo "$pc" >"$SDK_WORK/pc"
	# Every installed header compiles on its own with the SDK's flags alone.
	headers=$(cd "$(dirname "$(find "$SDK_WORK/root" -name runtime.h -path '*/kvm-migrate/guest/*')")" && ls)
	echo "$headers" >"$SDK_WORK/headers"
	for h in $headers; do
		printf '#include <kvm-migrate/guest/%s>\n' "$h" |
			cc $(sdk_pc --cflags kvm-migrate-guest) -Werror -fsyntax-only -x c - ||
			{ echo "header $h does not compile alone"; return 1; }
	done >"$SDK_WORK/headers.log" 2>&1 || return 1
	cp -R "$top_srcdir/examples/guest-sdk" "$SDK_WORK/example" &&
		chmod -R u+w "$SDK_WORK/example" &&
		(cd "$SDK_WORK/example" && make clean &&
			PKG_CONFIG_PATH=$(dirname "$pc") make PKG_CONFIG="$PKG_CONFIG_CMD") \
			>"$SDK_WORK/example.log" 2>&1
}
# The .pc names the configured prefix, which a DESTDIR install is not in;
# pkgconf's --define-prefix takes the prefix from where the .pc file lies.
PKG_CONFIG_CMD="pkg-config --define-prefix"
sdk_pc() { PKG_CONFIG_PATH="$(dirname "$(cat "$SDK_WORK/pc")")" $PKG_CONFIG_CMD "$@"; }

if [ -z "${KVM_MIGRATE_IN_SANDBOX:-}" ]; then
	kvm_works || [ -n "${KVM_MIGRATE_SANDBOX:-}" ] ||
		tap_skip_all "needs /dev/kvm, which is not a character device that opens here"
	SDK_WORK=$(mktemp -d "${TMPDIR:-/tmp}/kmguest-sdk.XXXXXX") || bail "mktemp failed"
	SDK_OWNER=1
	export SDK_WORK
	trap 'rm -rf "$SDK_WORK"' EXIT
	sdk_prepare; echo $? >"$SDK_WORK/prepare.status"
fi
require_kvm

. "$(dirname "$0")/lib-migrate.sh"	# tmp, pids, cleanup, progress, migrate
trap 'cleanup; [ -n "${SDK_OWNER:-}" ] && rm -rf "$SDK_WORK"' EXIT
tap_plan 18

# 1-3. The SDK, installed and used from outside the tree.
ok_if "make install DESTDIR=: the SDK's pkg-config file, library, linker script and image check" \
	eval '[ -s "$SDK_WORK/pc" ] && d=$(sdk_pc --variable=sdkdir kvm-migrate-guest) &&
	      [ -f "$d/libkmguest.a" ] && [ -f "$d/guest.lds" ] && [ -x "$d/check-image.sh" ]'
ok_if "its $(wc -w <"$SDK_WORK/headers" 2>/dev/null) headers compile on their own with its Cflags alone" \
	eval '[ -s "$SDK_WORK/headers" ] && ! grep -q . "$SDK_WORK/headers.log"'
example_built() {
	[ "$(cat "$SDK_WORK/prepare.status" 2>/dev/null)" = 0 ] && [ -s "$SDK_WORK/example/stamper.bin" ] &&
		! grep -q -- "$top_srcdir" "$SDK_WORK/example.log"
}
if example_built; then
	tap_ok "the example guest builds outside the tree with pkg-config alone ($(stat -c %s "$SDK_WORK/example/stamper.bin") bytes)"
else
	tap_fail "the example guest builds outside the tree with pkg-config alone" \
		"$(tail -n 15 "$SDK_WORK/install.log" "$SDK_WORK/example.log" 2>&1)"
fi
IMG=$SDK_WORK/example/stamper.bin
[ -s "$IMG" ] || bail "no image to run"

# 4-9. Images that cannot be, refused before a VM exists.
check "--guest-image of a missing file: refused" 3 "guest image $tmp/none.bin: No such file" \
	"$KVM_RUN" --guest-image "$tmp/none.bin"
head -c $(( (1 << 20) + 1 )) /dev/zero >"$tmp/big.bin"
check "--guest-image over 1 MiB (KM_IMAGE_MAX): refused" 3 "1048577 bytes, more than the 1048576" \
	"$KVM_RUN" --guest-image "$tmp/big.bin"
check "--guest-image of the ELF before objcopy: refused, with the objcopy to run" 3 \
	"an ELF file, not a flat image; make the image with objcopy -O binary" \
	"$KVM_RUN" --guest-image "$SDK_WORK/example/stamper.elf"
: >"$tmp/empty.bin"
check "--guest-image of an empty file: refused" 3 "empty; a flat image holds 1 to 1048576 bytes" \
	"$KVM_RUN" --guest-image "$tmp/empty.bin"
# What a bzImage has at 0x202 (the boot protocol's "HdrS"), in a small file.
{ head -c 514 /dev/zero; printf 'HdrS'; head -c 1000 /dev/zero; } >"$tmp/kernel.bin"
check "--guest-image of a Linux kernel: refused, pointing at --kernel" 3 \
	"a Linux kernel, not a flat image; boot it with --kernel" "$KVM_RUN" --guest-image "$tmp/kernel.bin"
check "--guest and --guest-image together: a usage error" 2 "one workload" \
	"$KVM_RUN" --guest idle --guest-image "$IMG"

# 10. A short run ends cleanly: every vCPU checks its stamps and returns.
check "a run to its end: exit status 0, each vCPU's stamps checked" 0 \
	"stamper\[1\]: done: 500 writes, 128 pages checked" \
	timeout "$(pace_time 60)" "$KVM_RUN" --vcpus 2 --mem 64M --guest-image "$IMG" \
	--guest-arg "rate=0,wss=1M,writes=500"

# 11-13. A longer run: its progress and its dirtying through the control socket.
A=$tmp/a B=$tmp/b
mkdir -m 700 "$A" "$B"
RATE=300	# pages/s: a tenth of what a unix socket carries in the sandbox
"$KVM_RUN" --name sdk1 --rundir "$A" --vcpus 2 --mem 64M --guest-image "$IMG" \
	--guest-arg "rate=$RATE,wss=4M" >"$tmp/vm.log" 2>&1 &
pids+=($!)
S=$A/sdk1.sock
ok_if "the image runs: both vCPUs report progress through the control socket" \
	wait_for "the guest's reports" 30 all_reported "$S"
ok_if "its name in the boot info is the image's (stamper)" \
	wait_for "its first line" 10 grep -q "stamper\[0\]: 2 vCPUs, 1024 pages, $RATE pages/s" "$tmp/vm.log"
# Its own counter is the truth: each write is a page not written in the
# window (a sequential walk over shares far larger than one interval's writes).
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
p0=$(progress "$S") t0=$(now_ms)
out=$("$KVM_MIGRATE" dirty-rate --rundir "$A" sdk1 --seconds 2 --interval 500 --json 2>&1)
p1=$(progress "$S") t1=$(now_ms)
truth=$(awk -v a="$p0" -v b="$p1" -v ms=$(( t1 - t0 )) 'BEGIN {printf "%.0f", (b - a) / (ms / 1000)}')
pps=$(printf '%s\n' "$out" | jq -r '."pages-per-second"' 2>/dev/null | cut -d. -f1)
ok_if "its dirtying, measured through the control socket: ${pps:-nothing} pages/s against its own $truth writes/s (within 20 %)" \
	awk -v m="${pps:-0}" -v t="$truth" 'BEGIN {exit !(t > 0 && m >= 0.8 * t && m <= 1.2 * t)}'

# 14-18. The image migrates like a built-in guest (it travels in guest
# memory, as theirs does) and goes on at the destination, stamps intact:
# the example's check answers the `check` command (KM_REQ_CHECK).
ok_if "its check, through the control socket: 1024 pages, none bad" checked_ok "$S" 1024
"$KVM_MIGRATED" --listen "unix:$tmp/d.sock" --rundir "$B" >"$tmp/daemon.log" 2>&1 &
pids+=($!)
wait_for "the daemon" 10 test -S "$tmp/d.sock" || bail "kvm-migrated did not start"
before=$(progress "$S")
migrate "$tmp/mig.out" --rundir "$A" sdk1 "unix:$tmp/d.sock" && st=0 || st=$?
if [ "$st" = 0 ]; then
	tap_ok "migrated to another kvm-migrated (after $before writes)"
else
	tap_fail "migrated to another kvm-migrated" "status $st" "$(tail -5 "$tmp/mig.out")"
fi
ok_if "the guest goes on at the destination" \
	wait_for "progress there" 30 progress_above "$B/sdk1.sock" "$before"
ok_if "where every stamp is there: 1024 pages checked, none bad" checked_ok "$B/sdk1.sock" 1024
quit_vm "$B/sdk1.sock"
ok_if "and the destination VM quits when asked" \
	wait_for "its stop" 20 grep -q "VM sdk1 stopped here: quit" "$tmp/daemon.log"
