#!/bin/sh
# The built workload images (kvm/guest/*.bin), checked as TAP: each passes
# check-image.sh (entry at the first byte, fits KM_IMAGE_MAX with .bss), and,
# when objdump is there, its code uses no SSE/AVX register (the guests
# promise general registers only), no %fs/%gs (a stack protector or TLS
# would fault: no segment base is set up), and no privileged or
# kernel-entry instruction (CPL3 with no handlers: any fault kills the VM).
set -u

builddir=${top_builddir:-.}/kvm/guest
srcdir=${top_srcdir:-.}/kvm/guest
OBJDUMP=${OBJDUMP:-objdump}
names="idle fill dirtier verify compute"

have_objdump=no
command -v "$OBJDUMP" >/dev/null 2>&1 && have_objdump=yes

count=0
for n in $names; do count=$((count + 2)); done
echo "1..$count"

i=0
for n in $names; do
	i=$((i + 1))
	if out=$(sh "$srcdir/check-image.sh" "$builddir/$n.elf" "$builddir/$n.bin" 2>&1); then
		echo "ok $i - $n.bin: entry at the first byte, $(wc -c < "$builddir/$n.bin" | tr -d ' ') bytes"
	else
		echo "not ok $i - $n.bin: $out"
	fi
	i=$((i + 1))
	if [ "$have_objdump" = no ]; then
		echo "ok $i - $n.elf instructions # SKIP no objdump"
		continue
	fi
	bad=$("$OBJDUMP" -d --no-show-raw-insn "$builddir/$n.elf" |
	      grep -E '%[xyz]mm|%fs|%gs|[[:space:]](syscall|sysenter|int|int3|hlt|cli|sti|lgdt|lidt|wrmsr|rdmsr)([[:space:]]|$)|<(__stack_chk|__udivti3|__umodti3|__divti3|__popcount)' |
	      head -n 5)
	if [ -z "$bad" ]; then
		echo "ok $i - $n.elf: no SSE, segment-base or privileged instruction"
	else
		echo "not ok $i - $n.elf uses forbidden instructions:"
		echo "$bad" | sed 's/^/#   /'
	fi
done
