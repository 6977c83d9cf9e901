/*
 * Dirty traces (docs/format.md s.10): which guest pages each interval of a
 * live run dirtied, with the guest's progress counter, in the record format
 * (framed, checksummed records of fields). A trace is
 *   REC_HEADER (purpose STREAM_DTRACE), REC_DTRACE_INFO (the geometry),
 *   one REC_DTRACE_INTERVAL per interval, REC_END (the recording's cost).
 * An interval's pages are runs (start, length) as LEB128 varints, or a
 * bitmap when that is smaller, so that no record outgrows REC_MAX_PAYLOAD.
 *
 * The writer knows no KVM (kvm/dtrace-rec.c feeds it); the reader checks
 * every length against the geometry and the bytes there are, and refuses
 * a damaged, truncated or unknown trace with a message that says where.
 */
#ifndef KM_DTRACE_H
#define KM_DTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bitmap.h"

#define DTRACE_VERSION		1
#define DTRACE_MAX_PAGES	(1ULL << 26)	/* 256 GiB of 4 KiB pages: an 8 MiB bitmap fits a record */
#define DTRACE_MAX_VCPUS	1024
#define DTRACE_MAX_INTERVAL_MS	3600000ULL
#define DTRACE_MAX_DURATION_NS	(24ULL * 3600 * 1000000000)	/* one interval, at most */
#define DTRACE_MAX_FILE		(4ULL << 30)	/* a trace a reader loads whole */

/* REC_DTRACE_INFO fields */
enum { DT_VERSION = 1, DT_PAGE_SIZE = 2, DT_GUEST_PAGES = 3, DT_INTERVAL_MS = 4, DT_VCPUS = 5,
       DT_START_NS = 6 };
/* REC_DTRACE_INTERVAL fields */
enum { DI_INDEX = 1, DI_DURATION_NS = 2, DI_PROGRESS = 3, DI_PAGES = 4, DI_RUNS = 5,
       DI_BITMAP = 6 };
/* REC_END fields of a trace */
enum { DE_INTERVALS = 1, DE_PAGES = 2, DE_CPU_NS = 3, DE_HARVEST_NS = 4, DE_WRITE_NS = 5,
       DE_BYTES = 6 };

struct dtrace_info {
	uint32_t version;		/* DTRACE_VERSION when written */
	uint64_t page_size;		/* bytes, a power of two from 512 to 1 GiB */
	uint64_t guest_pages;		/* 1 .. DTRACE_MAX_PAGES */
	uint64_t interval_ms;		/* as asked; each interval says how long it really was */
	uint64_t vcpus;			/* 1 .. DTRACE_MAX_VCPUS */
	uint64_t start_wall_ns;		/* CLOCK_REALTIME at the first interval's start */
};

/* What recording cost, as the recorder measured it (the trailer). */
struct dtrace_cost {
	uint64_t cpu_ns;		/* the recording thread's CPU time */
	uint64_t harvest_ns;		/* wall time reading dirty sets */
	uint64_t write_ns;		/* wall time encoding and writing */
	uint64_t bytes;			/* bytes of the trace before its REC_END */
};

struct dtrace_run {
	uint64_t start, len;
};

struct dtrace_interval {
	uint64_t index;
	uint64_t duration_ns;
	uint64_t progress;		/* the guest's work counter, summed over vCPUs, at its end */
	bool has_progress;		/* the guest reports progress */
	uint64_t pages;			/* pages dirtied in it */
	uint64_t first_run, nr_runs;	/* its runs in dtrace.runs, ascending, disjoint */
};

/* A whole trace in memory (the reader's result). */
struct dtrace {
	struct dtrace_info info;
	struct dtrace_interval *iv;
	uint64_t nr_iv;
	struct dtrace_run *runs;
	uint64_t nr_runs;
	uint64_t total_pages;		/* sum of the intervals' pages */
	struct dtrace_cost cost;
	uint64_t file_bytes;
};

struct dtrace_writer;

/*
 * A writer on fd (the caller's; not closed by the writer) for a trace of
 * info's geometry (its version is set here); writes the header and the
 * info at once. 0, KM_ERR_INVALID for a geometry out of bounds, -ENOMEM,
 * or a write's -errno.
 */
int dtrace__writer_new(int fd, const struct dtrace_info *info, struct dtrace_writer **out);
/*
 * One interval: its length, the progress counter (NULL: the guest reports
 * none) and its dirty set (info.guest_pages bits). Written before it
 * returns (a short write is retried; an error is returned and the trace
 * is then unfinished). The set is read only.
 */
int dtrace__put_interval(struct dtrace_writer *w, uint64_t duration_ns, const uint64_t *progress,
			 const struct bitmap *set);
/* Bytes written so far. */
uint64_t dtrace__writer_bytes(const struct dtrace_writer *w);
/* Wall ns the writer spent encoding and writing so far. */
uint64_t dtrace__writer_ns(const struct dtrace_writer *w);
/*
 * The trailer with cost (its bytes and write_ns are the writer's own when
 * 0), which completes the trace. The writer stays to be freed.
 */
int dtrace__finish(struct dtrace_writer *w, const struct dtrace_cost *cost);
void dtrace__writer_free(struct dtrace_writer *w);	/* NULL-safe */

/*
 * Reads a whole trace from data (len bytes): 0 and *out (free with
 * dtrace__free), or KM_ERR_TRUNCATED (it ends early, the REC_END
 * missing or cut), KM_ERR_CORRUPT (a checksum, a field or the geometry is
 * wrong), KM_ERR_VERSION (a later trace version), KM_ERR_BAD_MAGIC (not a
 * record file, or not a trace), KM_ERR_TOO_LARGE, -ENOMEM; with a
 * sentence in err that says where.
 */
int dtrace__parse(const uint8_t *data, size_t len, struct dtrace **out, char *err,
		  size_t errlen);
/* The same from a file (at most DTRACE_MAX_FILE bytes); -errno if it cannot be read. */
int dtrace__load(const char *path, struct dtrace **out, char *err, size_t errlen);
void dtrace__free(struct dtrace *t);	/* NULL-safe */

/* Interval i's set into b (info.guest_pages bits, cleared first). */
void dtrace__interval_set(const struct dtrace *t, uint64_t i, struct bitmap *b);

#endif
