#!/bin/bash
# kvm-run --disk: a Linux guest (Debian's kernel, busybox initramfs with the
# virtio modules) finds its virtio-blk disk through ACPI as /dev/vda of the
# image's size, writes a random pattern that reads back the same after its
# page cache is dropped and lands in the image file; its fsync reaches the
# device as a flush; what the device writes into guest memory is in the
# dirty log; a second VM on the image is refused while the first
# runs on; a read-only disk reads the same and refuses writes; bad input
# is refused clearly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-linux.sh"
command -v sha256sum >/dev/null || tap_skip_all "sha256sum is missing (coreutils)"
require_linux --disk
kernel=$linux_kernel
kver=$linux_kver

tmp=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

tap_plan 19
echo "# kernel $kernel"
bash "$top_srcdir/tests/lib/make-initramfs.sh" --modules "$kver=virtio_mmio,virtio_blk" \
	"$tmp/initrd.cpio.gz" KVM-MIGRATE-INIT || bail "cannot make the initramfs"
img="$tmp/disk.img"
truncate -s 16M "$img"
append="console=ttyS0 pci=off quiet panic=-1"

# 1-3. Bad input, refused before any VM is made.
check "a missing disk: clear error, exit 3" 3 "disk $tmp/nosuch.img: No such file" \
	timeout 60 "$KVM_RUN" --kernel "$kernel" --disk "$tmp/nosuch.img"
head -c 1000 /dev/zero > "$tmp/odd.img"
check "an image that is not whole sectors: clear error, exit 3" 3 \
	"disk $tmp/odd.img: 1000 bytes, not a whole number of 512-byte sectors" \
	timeout 60 "$KVM_RUN" --kernel "$kernel" --disk "$tmp/odd.img"
check "--disk without --kernel: usage error, exit 2" 2 "--disk and --disk-ro need --kernel" \
	"$KVM_RUN" --disk "$img"

run="$tmp/run"
# The last line the guest printed that starts with $1 (typed command lines do not: a prompt precedes them).
line() { tr -d '\r' < "$con" | grep -E "^$1" | tail -1; }
printed() { tr -d '\r' < "$con" | grep -qE "^$1\$"; }
stat_of() {
	"$QMP_SEND" "$run/$vm.sock" '{"execute": "query-stats"}' 2>/dev/null |
		grep -oE "\"$1\": *[0-9]+" | grep -oE '[0-9]+$'
}
# boot NAME VCPUS DISK-OPTION: a VM on the image, up to the init marker (boot_vm).
boot() {
	boot_vm "$1" "$2 vCPU(s), $3 (virtio modules loaded)" --mem 256M --vcpus "$2" \
		--kernel "$kernel" --initrd "$tmp/initrd.cpio.gz" --append "$append" "$3" "$img"
}

# 4-6. The guest finds the disk: its size in sectors, its serial (GET_ID: the file's name).
if boot d1 2 --disk; then
	tap_ok "Linux boots with a disk: the init marker after $ms ms"
else
	tap_fail "no init marker with a disk"
fi
type_in $'echo vda=$(cat /sys/block/vda/size) serial=$(cat /sys/block/vda/serial)\n'
ok_if "the guest sees /dev/vda of 16 MiB (32768 sectors)" \
	wait_for "the disk's size" 60 printed "vda=32768 .*"
ok_if "its serial is the image's name (GET_ID)" printed "vda=32768 serial=disk.img"

# 7-10. A random MiB written with fsync, the page cache dropped, read back from the
# device into guest memory, which the migration's dirty log must see (vmm-pages).
"$QMP_SEND" "$run/$vm.sock" '{"execute": "dirty-log", "arguments": {"mode": "on"}}' >/dev/null 2>&1
w0=$(stat_of bytes-read); v0=$(stat_of vmm-pages)
type_in $'dd if=/dev/urandom of=/tmp/p bs=1M count=1 2>/dev/null; dd if=/tmp/p of=/dev/vda bs=1M conv=fsync 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; echo pat=$(sha256sum < /tmp/p | cut -d" " -f1) back=$(dd if=/dev/vda bs=1M count=1 2>/dev/null | sha256sum | cut -d" " -f1)\n'
wait_for "the pattern's hashes" 120 printed "pat=[0-9a-f]{64} back=[0-9a-f]{64}" || true
l=$(line "pat=")
pat=$(printf '%s' "$l" | sed -n 's/^pat=\([0-9a-f]*\) .*/\1/p')
back=$(printf '%s' "$l" | sed -n 's/.* back=\([0-9a-f]*\)$/\1/p')
ok_if "the pattern reads back the same from the disk after drop_caches ($pat)" \
	eval '[ -n "$pat" ] && [ "$pat" = "$back" ]'
flushes=$(stat_of flushes); writes=$(stat_of bytes-written); reads=$(stat_of bytes-read)
v1=$(stat_of vmm-pages)
ok_if "dd's fsync reached the device as a flush (query-stats: $flushes flushes, $writes bytes written)" \
	eval '[ "${flushes:-0}" -ge 1 ] && [ "${writes:-0}" -ge 1048576 ]'
ok_if "the read-back came from the device ($(( ${reads:-0} - ${w0:-0} )) more bytes read)" \
	eval '[ $(( ${reads:-0} - ${w0:-0} )) -ge 1048576 ]'
ok_if "what the device wrote into guest memory is marked dirty ($(( ${v1:-0} - ${v0:-0} )) pages, >= 256)" \
	eval '[ -n "$v0" ] && [ $(( ${v1:-0} - v0 )) -ge 256 ]'

# 11-12. A second VM on the image is refused while the first runs on.
check "a second kvm-run --disk on the image: refused, naming it, exit 3" 3 \
	"disk $img: another VM uses it" \
	timeout 60 "$KVM_RUN" --kernel "$kernel" --initrd "$tmp/initrd.cpio.gz" --disk "$img"
type_in $'echo alive=$((40 + 2))\n'
ok_if "the first VM runs on" wait_for "the guest to answer" 60 printed "alive=42"

# 13-14. Power off; the image holds what the guest wrote.
vm_end "poweroff -f" "poweroff -f"
host=$(head -c 1M "$img" | sha256sum | cut -d' ' -f1)
ok_if "the image's first MiB is the guest's pattern ($host)" eval '[ -n "$pat" ] && [ "$host" = "$pat" ]'

# 15-19. The same image read-only (its lock went with the first VM).
if boot d2 1 --disk-ro; then
	tap_ok "a read-only disk boots: the init marker after $ms ms"
else
	tap_fail "no init marker with a read-only disk"
fi
type_in $'echo ro=$(cat /sys/block/vda/ro) back=$(dd if=/dev/vda bs=1M count=1 2>/dev/null | sha256sum | cut -d" " -f1)\n'
wait_for "the read-only disk's hash" 60 printed "ro=1 back=[0-9a-f]{64}" || true
ok_if "the guest sees it read-only, holding the pattern" printed "ro=1 back=$pat"
type_in $'dd if=/dev/zero of=/dev/vda bs=512 count=1 conv=fsync 2>/dev/null && echo wrote=yes || echo wrote=no\n'
ok_if "a write to it fails in the guest" wait_for "the write's outcome" 60 printed "wrote=no"
vm_end "poweroff -f with a read-only disk" "poweroff -f"
ok_if "the read-only image is unchanged" \
	eval '[ -n "$pat" ] && [ "$(head -c 1M "$img" | sha256sum | cut -d" " -f1)" = "$pat" ]'
