#!/bin/sh
# Checks a workload image against the guest ABI (abi.h) before it is
# installed: usage: check-image.sh IMAGE.elf IMAGE.bin
#   - the ELF's entry point is KM_IMAGE_GPA and the lowest loaded address;
#   - the flat file starts with the entry code (the same bytes as the ELF
#     has at the entry point), so the VMM's jump to its first byte runs it;
#   - the image with .bss fits in KM_IMAGE_MAX, and the flat file holds all
#     of it (.bss included as zeros).
# Only od, dd, cmp and shell arithmetic: no binutils beyond objcopy needed.
set -u

KM_IMAGE_GPA=2097152	# 0x200000
KM_IMAGE_MAX=1048576	# 0x100000

elf=$1
bin=$2
name=${bin##*/}

fail() {
	echo "check-image: $name: $*" >&2
	exit 1
}

# u NBYTES OFFSET: an unsigned little-endian integer from the ELF.
u() {
	od -An -v -t u"$1" -j "$2" -N "$1" "$elf" | tr -d ' \n'
}

[ -f "$elf" ] || fail "no ELF file $elf"
[ -f "$bin" ] || fail "no flat file $bin"
[ "$(od -An -c -N 4 "$elf" | tr -d ' \n')" = '177ELF' ] || fail "$elf is not ELF"
[ "$(u 1 4)" = 2 ] || fail "not a 64-bit ELF"

entry=$(u 8 24)
phoff=$(u 8 32)
phentsize=$(u 2 54)
phnum=$(u 2 56)
[ "$entry" -eq "$KM_IMAGE_GPA" ] || fail "entry point $entry is not KM_IMAGE_GPA"

low= high=0 entry_off=
i=0
while [ "$i" -lt "$phnum" ]; do
	ph=$((phoff + i * phentsize))
	i=$((i + 1))
	[ "$(u 4 "$ph")" = 1 ] || continue	# PT_LOAD only
	offset=$(u 8 $((ph + 8)))
	vaddr=$(u 8 $((ph + 16)))
	filesz=$(u 8 $((ph + 32)))
	memsz=$(u 8 $((ph + 40)))
	[ "$memsz" -gt 0 ] || continue
	if [ -z "$low" ] || [ "$vaddr" -lt "$low" ]; then low=$vaddr; fi
	[ $((vaddr + memsz)) -gt "$high" ] && high=$((vaddr + memsz))
	if [ "$entry" -ge "$vaddr" ] && [ "$entry" -lt $((vaddr + filesz)) ]; then
		entry_off=$((offset + entry - vaddr))
	fi
done
[ -n "$low" ] || fail "no loadable segment"
[ "$low" -eq "$KM_IMAGE_GPA" ] || fail "lowest loaded address $low is below or above the entry point"
[ -n "$entry_off" ] || fail "the entry point is in no loaded segment"
size=$((high - low))
[ "$size" -le "$KM_IMAGE_MAX" ] || fail "image with .bss is $size bytes, more than KM_IMAGE_MAX ($KM_IMAGE_MAX)"

binsize=$(wc -c < "$bin" | tr -d ' ')
[ "$binsize" -le "$KM_IMAGE_MAX" ] || fail "flat file is $binsize bytes, more than KM_IMAGE_MAX"
[ "$binsize" -eq "$size" ] || fail "flat file is $binsize bytes but the image spans $size (.bss missing?)"

n=16
[ "$binsize" -lt "$n" ] && n=$binsize
want=$(od -An -v -t x1 -j "$entry_off" -N "$n" "$elf")
have=$(od -An -v -t x1 -N "$n" "$bin")
[ "$want" = "$have" ] || fail "first bytes are not the entry code (have$have, want$want)"
exit 0
