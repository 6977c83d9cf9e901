/*
 * ckpt-strip FILE TYPE: rewrites a record stream without its records of
 * TYPE (each record is a 16-byte header, u32 type, u32 length, u64
 * checksum, and its payload: the others stay valid as they are). The
 * tests make with it what an older writer made, e.g. a checkpoint file
 * without a page index.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	static uint8_t buf[16 + (16U << 20)];
	char tmp[4200];
	uint32_t type, len, drop;
	size_t got, dropped = 0;
	FILE *in, *out;

	if (argc != 3) {
		fprintf(stderr, "usage: ckpt-strip FILE TYPE\n");
		return 2;
	}
	drop = (uint32_t)strtoul(argv[2], NULL, 10);
	snprintf(tmp, sizeof(tmp), "%s.strip", argv[1]);
	if (!(in = fopen(argv[1], "rb")) || !(out = fopen(tmp, "wb"))) {
		perror(argv[1]);
		return 1;
	}
	while ((got = fread(buf, 1, 16, in)) == 16) {
		memcpy(&type, buf, 4);
		memcpy(&len, buf + 4, 4);
		if (len > (16U << 20) || fread(buf + 16, 1, len, in) != len) {
			fprintf(stderr, "%s: a record runs past the end\n", argv[1]);
			return 1;
		}
		if (type == drop)
			dropped++;
		else if (fwrite(buf, 1, 16 + (size_t)len, out) != 16 + (size_t)len)
			return 1;
	}
	if (got != 0 || fclose(out) != 0 || rename(tmp, argv[1]) != 0) {
		fprintf(stderr, "%s: could not rewrite it\n", argv[1]);
		return 1;
	}
	fclose(in);
	printf("%zu record(s) of type %u dropped\n", dropped, drop);
	return 0;
}
