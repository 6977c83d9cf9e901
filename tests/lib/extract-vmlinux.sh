#!/bin/bash
# extract-vmlinux.sh BZIMAGE OUT: the uncompressed ELF vmlinux inside an
# x86 bzImage (Debian ships no vmlinux), for tests/linux-boot.sh. The
# setup header says where the compressed kernel is: payload_offset (0x248)
# and payload_length (0x24c) bytes after the setup sectors, whose count is
# at 0x1f1 ((setup_sects + 1) * 512 bytes). Its compression is told by its
# magic and undone by the Debian tool for it.
# Exit status: 0 done; 1 error; 2 a tool is missing (the message says
# which and which package has it: a caller may skip).
set -eu
in=$1
out=$2
die() { echo "extract-vmlinux: $in: $*" >&2; exit 1; }
# u32 OFFSET / u8 OFFSET: little-endian integers of the file.
u32() { od -An -tu4 -j"$1" -N4 "$in" | tr -d ' '; }
u8() { od -An -tu1 -j"$1" -N1 "$in" | tr -d ' '; }

[ -r "$in" ] || die "not readable"
[ "$(od -An -c -j$((0x202)) -N4 "$in" | tr -d ' ')" = HdrS ] || die "not a bzImage (no HdrS)"
[ "$(od -An -tx2 -j$((0x206)) -N2 "$in" | tr -d ' ')" \> 0207 ] ||
	die "boot protocol before 2.08: no payload_offset"
setup=$(( ($(u8 $((0x1f1))) + 1) * 512 ))
off=$(( setup + $(u32 $((0x248))) ))
len=$(u32 $((0x24c)))
size=$(stat -c %s "$in")
[ "$len" -gt 0 ] && [ $((off + len)) -le "$size" ] ||
	die "payload $off+$len is not within the file's $size bytes"

magic=$(od -An -tx1 -j"$off" -N6 "$in" | tr -d ' \n')
# The kernel's build appends the uncompressed size (4 bytes) to every
# payload but gzip's (scripts/Makefile.lib, size_append): left off here,
# so that each tool sees exactly its stream.
trail=4
case $magic in
1f8b*) tool=gzip; pkg=gzip; cmd=(gzip -dc); trail=0 ;;
fd377a585a00) tool=xz; pkg=xz-utils; cmd=(xz -dc --single-stream) ;;
28b52ffd*) tool=zstd; pkg=zstd; cmd=(zstd -dcq) ;;
02214c18*) tool=lz4; pkg=lz4; cmd=(lz4 -dcq) ;;
425a68*) tool=bzip2; pkg=bzip2; cmd=(bzip2 -dc) ;;
5d0000*) tool=xz; pkg=xz-utils; cmd=(xz -dc --format=lzma) ;;
894c5a4f*) tool=lzop; pkg=lzop; cmd=(lzop -dc) ;;
*) die "payload of unknown compression (magic $magic)" ;;
esac
command -v "$tool" >/dev/null || {
	echo "extract-vmlinux: $tool is missing (install $pkg) for $in" >&2
	exit 2
}
tail -c +$((off + 1)) "$in" | head -c $((len - trail)) | "${cmd[@]}" > "$out.tmp" ||
	{ rm -f "$out.tmp"; die "$tool could not decompress the payload"; }
[ "$(od -An -c -N4 "$out.tmp" | tr -d ' ')" = '177ELF' ] ||
	{ rm -f "$out.tmp"; die "the payload is not an ELF file"; }
mv -f "$out.tmp" "$out"
