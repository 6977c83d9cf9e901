/*
 * memgrep PID HEX...: whether any of the byte strings (hex) occurs in the
 * memory of process PID (its readable mappings, through /proc/PID/mem; as
 * root). Exit 0 and "found in MAPPING" if one does, 1 if none does, 2 on
 * an error. The trust tests use it to show that neither kvm-migrated nor
 * a VM it received holds the server's private key, and, as the control
 * that the search works, that its key agent does.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK	(1U << 20)

static size_t unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;
	unsigned int b;

	while (s[0] && s[1] && n < max && sscanf(s, "%2x", &b) == 1) {
		out[n++] = (unsigned char)b;
		s += 2;
	}
	return s[0] ? 0 : n;
}

int main(int argc, char **argv)
{
	unsigned char pat[16][128], *buf;
	size_t plen[16], np = 0, i;
	char path[64], line[512];
	FILE *maps;
	int mem;

	if (argc < 3 || argc - 2 > 16) {
		fprintf(stderr, "usage: memgrep PID HEX...\n");
		return 2;
	}
	for (i = 2; i < (size_t)argc; i++) {
		if (!(plen[np] = unhex(argv[i], pat[np], sizeof(pat[np])))) {
			fprintf(stderr, "memgrep: bad hex %s\n", argv[i]);
			return 2;
		}
		np++;
	}
	snprintf(path, sizeof(path), "/proc/%s/maps", argv[1]);
	if (!(maps = fopen(path, "r")))
		return perror(path), 2;
	snprintf(path, sizeof(path), "/proc/%s/mem", argv[1]);
	if ((mem = open(path, O_RDONLY)) < 0 || !(buf = malloc(CHUNK + 128)))
		return perror(path), 2;
	while (fgets(line, sizeof(line), maps)) {
		unsigned long lo, hi, at;
		char perm[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || perm[0] != 'r')
			continue;
		/* Overlap the chunks by 127 bytes so that nothing straddles unseen. */
		for (at = lo; at < hi; at += CHUNK) {
			size_t want = hi - at > CHUNK + 127 ? CHUNK + 127 : hi - at, k;
			ssize_t n = pread(mem, buf, want, (off_t)at);

			if (n <= 0)
				break;
			for (k = 0; k < np; k++) {
				if ((size_t)n >= plen[k] && memmem(buf, (size_t)n, pat[k], plen[k])) {
					printf("found in %s", line);
					return 0;
				}
			}
		}
	}
	return 1;
}
