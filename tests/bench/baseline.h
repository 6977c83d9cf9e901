/*
 * The machine's own reference limits, measured by a plain host process, so
 * that a guest's write rate can be read as a ratio of what this machine can
 * do at all: memcpy bandwidth, and the rate of writing one 8-byte word per
 * 4 KiB page of a memfd (guest RAM is a memfd too), on first touch (page
 * faults and zeroing) and once the pages are populated (TLB-miss bound).
 */
#ifndef KM_BENCH_BASELINE_H
#define KM_BENCH_BASELINE_H

#include <stdint.h>

struct baseline {
	double memcpy_gbs;		/* GB/s (10^9 bytes), best of several copies */
	uint64_t memcpy_bytes;		/* size of one copy */
	double touch_first_pps;		/* pages/s, first write to each page */
	double touch_pps;		/* pages/s, pages already populated (best pass) */
	uint64_t touch_pages;
};

/*
 * Measures over touch_bytes of memfd memory (and a memcpy of up to 256 MiB).
 * Returns 0 or a negative error (allocation failed).
 */
int baseline__measure(uint64_t touch_bytes, struct baseline *out);

/* Prints it as "# reference ..." lines (prefix names the machine). */
void baseline__print(const char *prefix, const struct baseline *b);

#endif
