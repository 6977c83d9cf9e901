/*
 * ckpt-poke FILE TYPE BYTE: flips the low bit of byte BYTE of the payload
 * of FILE's first record of TYPE, in place, and writes that record's
 * checksum anew (lib/record.h): damage no checksum catches, e.g. a page
 * index that names the wrong offset, for the checks that must catch it.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "record.h"

int main(int argc, char **argv)
{
	static uint8_t payload[REC_MAX_PAYLOAD];
	uint8_t hdr[REC_HDR_SIZE];
	uint32_t type, len, want;
	unsigned long byte;
	off_t off = 0;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: ckpt-poke FILE TYPE BYTE\n");
		return 2;
	}
	want = (uint32_t)strtoul(argv[2], NULL, 10);
	byte = strtoul(argv[3], NULL, 10);
	if ((fd = open(argv[1], O_RDWR)) < 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		if (pread(fd, hdr, sizeof(hdr), off) != (ssize_t)sizeof(hdr)) {
			fprintf(stderr, "%s: no record of type %u\n", argv[1], want);
			return 1;
		}
		memcpy(&type, hdr, 4);
		memcpy(&len, hdr + 4, 4);
		if (type == want)
			break;
		off += REC_HDR_SIZE + (off_t)len;
	}
	if (len > REC_MAX_PAYLOAD || byte >= len ||
	    pread(fd, payload, len, off + REC_HDR_SIZE) != (ssize_t)len) {
		fprintf(stderr, "%s: the record of type %u at %lld cannot be poked at %lu\n",
			argv[1], want, (long long)off, byte);
		return 1;
	}
	payload[byte] ^= 1;
	if (rec_header(type, payload, len, hdr) != 0 ||
	    pwrite(fd, hdr, sizeof(hdr), off) != (ssize_t)sizeof(hdr) ||
	    pwrite(fd, payload + byte, 1, off + REC_HDR_SIZE + (off_t)byte) != 1 || close(fd) != 0) {
		fprintf(stderr, "%s: could not rewrite it\n", argv[1]);
		return 1;
	}
	printf("record of type %u at %lld: byte %lu flipped, checksum rewritten\n", type,
	       (long long)off, byte);
	return 0;
}
