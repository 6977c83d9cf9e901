/*
 * libFuzzer target for the stream reader: the input is a migration stream
 * as the receiver reads it (migrate/recv.c), cut into records by rec_get
 * and each payload handed to its parser:
 *	REC_HEADER	stream_parse_header
 *	REC_VM_CONFIG	state__parse_config (fields only if built with
 *			-DFUZZ_NO_KVM_STATE, when kvm/x86/state.c cannot be linked)
 *	REC_PAGES	pages_get loop, pages_expand into a scratch page, and
 *			the receiver's address check of each page (its page
 *			number and host address in a 4 GiB guest's slots)
 *	anything else	rec_get_field loop (REC_ERROR, REC_END, state records)
 * and, unless built with -DFUZZ_NO_KVM_STATE, the whole input through
 * state__load_all into a VM of 2 vCPUs that has no KVM behind it: its
 * record walk, vCPU ids (range, duplicates), field index and the CPUID
 * check run; what would reach KVM fails at the first ioctl.
 *
 * Random bytes almost never carry a right XXH3 checksum, so the mutator's
 * work would stop at rec_get. Each input is therefore read twice: as it is
 * (the framing and checksum paths), and reframed with every record's
 * checksum made right (the payload parsers).
 *
 * Beyond "no crash, no leak, no out-of-bounds access" (ASan, UBSan), the
 * target checks what the parsers promise: a page entry's address is
 * aligned, its bytes lie inside the payload, and a page that decodes
 * encodes and decodes again to itself; an accepted header has a known
 * purpose and known caps; an accepted config is in range.
 *
 * Built by scripts/fuzz (clang -fsanitize=fuzzer), not by automake. With
 * -DFUZZ_MAKE_SEEDS it is instead a program that writes a seed corpus of
 * valid streams into the directory given, and checks each parses clean.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pages.h"
#include "record.h"
#include "stream.h"
#include "stream-int.h"	/* stream_get_into: the read-ahead's reader */
#include "kvm/state.h"
#ifndef FUZZ_NO_KVM_STATE
#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#endif

/* A broken promise is a finding: abort so libFuzzer saves the input. */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
		abort();						\
	}								\
} while (0)

/*
 * The transport: writes never run; reads serve the input in chunks of a
 * size taken from the input itself, so that records arrive split at every
 * place (stream_get_into's direct reads into the record buffer).
 */
static const uint8_t *feed;
static size_t feed_len, feed_off, feed_chunk = 1;

int chan_write(struct chan *c, const void *data, size_t len)
{
	return KM_ERR_STATE;
}

int64_t chan_read(struct chan *c, void *data, size_t len)
{
	size_t n;

	if (!feed)
		return KM_ERR_STATE;
	if (feed_off == feed_len)
		return KM_ERR_END;
	n = feed_len - feed_off;
	if (n > len)
		n = len;
	if (n > feed_chunk)
		n = feed_chunk;
	memcpy(data, feed + feed_off, n);
	feed_off += n;
	return (int64_t)n;
}

int chan_set_timeout(struct chan *c, int timeout_ms)
{
	return 0;	/* the input is all there: nothing to wait for */
}

int chan_read_full(struct chan *c, void *data, size_t len)
{
	size_t got = 0;
	int64_t n;

	while (got < len) {
		n = chan_read(c, (uint8_t *)data + got, len - got);
		if (n < 0)
			return n == KM_ERR_END && got > 0 ? KM_ERR_TRUNCATED : (int)n;
		got += (size_t)n;
	}
	return 0;
}

/* How far a stream got, for the seed self-check. */
struct fuzz_result {
	unsigned int records;	/* records rec_get handed out */
	unsigned int refused;	/* payloads a parser refused */
	bool end;		/* REC_END was read */
};

static bool fuzz_inside(const uint8_t *p, uint32_t len, const uint8_t *base, uint32_t size)
{
	return p >= base && len <= size && (size_t)(p - base) <= size - len;
}

/* Encodes a decoded page again: it must decode to the same bytes. */
static void fuzz_reencode(uint64_t gpa, const uint8_t *page)
{
	static uint8_t again[PAGE_SIZE_4K] __attribute__((aligned(64)));
	struct pages_stats st = { 0 };
	struct buf *b = buf_new(PAGES_ENTRY_MAX);
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa2;
	uint32_t len;

	FUZZ_CHECK(b != NULL);
	FUZZ_CHECK(pages_put(b, gpa, page, true, &st) == 0);
	FUZZ_CHECK(pages_get(b, &gpa2, &kind, &data, &len) == 0);
	FUZZ_CHECK(gpa2 == gpa);
	FUZZ_CHECK(pages_expand(kind, data, len, again) == 0);
	FUZZ_CHECK(memcmp(again, page, PAGE_SIZE_4K) == 0);
	FUZZ_CHECK(pages_get(b, &gpa2, &kind, &data, &len) == KM_ERR_END);
	buf_free(b);
}

#ifndef FUZZ_NO_KVM_STATE
/*
 * A VM of 4 GiB laid out as kvm/memory.c does (3 GiB below the hole, the
 * rest from 4 GiB), with two vCPUs and no KVM: enough for the receiver's
 * address checks and the state loaders' parsing. Host addresses are fake
 * and never dereferenced.
 */
static struct kvm *fuzz_vm(void)
{
	static struct kvm vm;
	static struct kvm_cpu cpu[2];
	static struct {
		struct kvm_cpuid2 h;
		struct kvm_cpuid_entry2 e[2];
	} cpuid;
	static uint32_t msrs[] = { 0x10, 0xc0000080, 0xc0000081 };

	if (vm.nr_cpus)
		return &vm;
	vm.sys_fd = vm.vm_fd = -1;
	vm.mem.size = 4ULL << 30;
	vm.mem.nr_slots = 2;
	vm.mem.slots[0] = (struct kvm_slot){ .gpa = 0, .size = 3ULL << 30,
					     .hva = (uint8_t *)(uintptr_t)(1ULL << 40) };
	vm.mem.slots[1] = (struct kvm_slot){ .gpa = 4ULL << 30, .size = 1ULL << 30,
					     .offset = 3ULL << 30,
					     .hva = (uint8_t *)(uintptr_t)(1ULL << 40) + (3ULL << 30) };
	cpuid.h.nent = 2;
	cpuid.e[0] = (struct kvm_cpuid_entry2){ .function = 1, .ecx = 0x00000201 };
	cpuid.e[1] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0, .ebx = 0x1 };
	vm.cpuid = &cpuid.h;
	vm.msr_index = msrs;
	vm.nr_msr_index = 3;
	vm.cfg.mem_size = vm.mem.size;
	vm.cfg.nr_vcpus = 2;
	vm.cfg.irqchip = true;
	for (unsigned int i = 0; i < 2; i++) {
		cpu[i].fd = -1;
		cpu[i].id = i;
		cpu[i].kvm = &vm;
		vm.cpus[i] = &cpu[i];
	}
	vm.nr_cpus = 2;
	return &vm;
}

/* The loader's check of a page's address (kvm/vmrec-load.c vmrec__page). */
static void fuzz_address(uint64_t gpa)
{
	struct kvm *vm = fuzz_vm();
	uint64_t n = memory__page_of(&vm->mem, gpa);
	void *hva = memory__hva(&vm->mem, gpa, PAGE_SIZE_4K);

	/* Both say "outside guest memory" or neither does, and they agree. */
	FUZZ_CHECK((n == UINT64_MAX) == (hva == NULL));
	if (n != UINT64_MAX) {
		FUZZ_CHECK(n < memory__nr_pages(&vm->mem));
		FUZZ_CHECK(memory__gpa_of(&vm->mem, n) == gpa);
	}
}
#endif

static int fuzz_pages(const uint8_t *p, uint32_t size)
{
	/* Aligned as guest memory is (pages_is_zero reads it in words). */
	static uint8_t page[PAGE_SIZE_4K] __attribute__((aligned(64)));
	struct buf *f = buf_view(p, size);
	enum page_kind kind;
	const uint8_t *data;
	uint64_t gpa;
	uint32_t len;
	int r;

	if (!f)
		return -ENOMEM;
	while ((r = pages_get(f, &gpa, &kind, &data, &len)) == 0) {
		FUZZ_CHECK((gpa & (PAGE_SIZE_4K - 1)) == 0);
		switch (kind) {
		case PAGE_ZERO:
			FUZZ_CHECK(data == NULL && len == 0);
			break;
		case PAGE_RAW:
			FUZZ_CHECK(len == PAGE_SIZE_4K);
			break;
		case PAGE_LZ4:
			FUZZ_CHECK(len >= 1 && len < PAGE_SIZE_4K);
			break;
		default:
			FUZZ_CHECK(!"pages_get gave an unknown kind");
		}
		if (len)
			FUZZ_CHECK(fuzz_inside(data, len, p, size));
#ifndef FUZZ_NO_KVM_STATE
		fuzz_address(gpa);
#endif
		if ((r = pages_expand(kind, data, len, page)) != 0) {
			FUZZ_CHECK(r == KM_ERR_CORRUPT && kind == PAGE_LZ4);
			break;
		}
		fuzz_reencode(gpa, page);
	}
	buf_free(f);
	if (r != KM_ERR_END)
		FUZZ_CHECK(r == KM_ERR_CORRUPT || r == KM_ERR_TRUNCATED);
	return r == KM_ERR_END ? 0 : r;
}

static int fuzz_fields(const uint8_t *p, uint32_t size)
{
	struct buf *f = buf_view(p, size);
	const uint8_t *data;
	uint32_t tag, len;
	uint64_t v;
	int r;

	if (!f)
		return -ENOMEM;
	while ((r = rec_get_field(f, &tag, &data, &len)) == 0) {
		FUZZ_CHECK(fuzz_inside(data, len, p, size));
		/* As readers do for u64 fields: only a length of 8 is taken. */
		if (rec_field_u64(data, len, &v) == 0)
			FUZZ_CHECK(len == 8);
	}
	buf_free(f);
	FUZZ_CHECK(r == KM_ERR_END || r == KM_ERR_TRUNCATED);
	return r == KM_ERR_END ? 0 : r;
}

static int fuzz_header(const uint8_t *p, uint32_t size)
{
	enum stream_purpose purpose, purpose2;
	uint64_t caps, offered;
	int r, r2;

	if ((r = stream_parse_header(p, size, &purpose, &caps)) == 0) {
		FUZZ_CHECK(purpose >= STREAM_MIGRATE && purpose <= STREAM_PURPOSE_LAST);
		FUZZ_CHECK((caps & ~STREAM_CAPS_KNOWN) == 0);
	}
	/* A live peer's reading differs only in taking unknown caps as an offer. */
	r2 = stream_parse_header_offer(p, size, &purpose2, &offered);
	if (r == 0)
		FUZZ_CHECK(r2 == 0 && purpose2 == purpose && offered == caps);
	if (r2 == 0 && r != 0)
		FUZZ_CHECK(r == KM_ERR_UNSUPPORTED && (offered & ~STREAM_CAPS_KNOWN) != 0);
	return r;
}

static int fuzz_config(const uint8_t *p, uint32_t size)
{
#ifdef FUZZ_NO_KVM_STATE
	return fuzz_fields(p, size);
#else
	struct kvm_config cfg = { 0 };
	int r;

	if ((r = state__parse_config(p, size, &cfg)) == 0) {
		FUZZ_CHECK(cfg.nr_vcpus >= 1);
		FUZZ_CHECK(cfg.mem_size > 0 && cfg.mem_size % (2ULL << 20) == 0);
	}
	/* The receiver also walks the fields for the name (recv__name). */
	fuzz_fields(p, size);
	return r;
#endif
}

/* The receiver's loop over a whole input. */
static void fuzz_read(const uint8_t *data, size_t size, struct fuzz_result *res)
{
	struct buf *in = buf_view(data, size);
	const uint8_t *p;
	uint32_t type, len;
	size_t before;
	int r;

	memset(res, 0, sizeof(*res));
	if (!in)
		return;
	for (;;) {
		before = buf_len(in);
		r = rec_get(in, REC_MAX_PAYLOAD, &type, &p, &len);
		if (r != 0) {
			FUZZ_CHECK(r == KM_ERR_TRUNCATED || r == KM_ERR_CORRUPT ||
				   r == KM_ERR_TOO_LARGE);
			/* A refused record is not consumed. */
			FUZZ_CHECK(buf_len(in) == before);
			break;
		}
		FUZZ_CHECK(buf_len(in) == before - REC_HDR_SIZE - len);
		FUZZ_CHECK(len == 0 || fuzz_inside(p, len, data, (uint32_t)size));
		res->records++;
		switch (type) {
		case REC_HEADER:
			r = fuzz_header(p, len);
			break;
		case REC_VM_CONFIG:
			r = fuzz_config(p, len);
			break;
		case REC_PAGES:
			r = fuzz_pages(p, len);
			break;
		default:	/* REC_ERROR, REC_END, state records: fields */
			r = fuzz_fields(p, len);
			break;
		}
		res->refused += r != 0;
		if (type == REC_END)
			res->end = true;
	}
	buf_free(in);
#ifndef FUZZ_NO_KVM_STATE
	/*
	 * The state loader over the whole input, as the receiver hands it the
	 * state records at REC_END. Without KVM it fails at the first ioctl;
	 * what comes before (records, vCPU ids, fields, CPUID) is what counts.
	 */
	r = state__load_all(fuzz_vm(), data, size);
	FUZZ_CHECK(r != 0 || res->records > 0);
#endif
}

/*
 * The input with each record's checksum made right: records are taken as
 * (type, length, 8 bytes ignored, payload), a length past the input's end
 * is cut to what is there, and a tail shorter than a header is kept as it
 * is. Never longer than the input.
 */
static struct buf *fuzz_reframe(const uint8_t *data, size_t size)
{
	struct buf *out = buf_new(size);
	size_t off = 0;
	uint32_t type, len;

	if (!out)
		return NULL;
	while (size - off >= REC_HDR_SIZE) {
		memcpy(&type, data + off, 4);
		memcpy(&len, data + off + 4, 4);
		if (len > size - off - REC_HDR_SIZE)
			len = (uint32_t)(size - off - REC_HDR_SIZE);
		if (rec_put(out, type, data + off + REC_HDR_SIZE, len) != 0)
			break;
		off += REC_HDR_SIZE + (size_t)len;
	}
	if (off < size && buf_put(out, data + off, size - off) != 0) {
		buf_free(out);
		return NULL;
	}
	return out;
}

/*
 * The receiving path of a migration's read-ahead: the input as bytes off a
 * channel into stream_get_into, which reads record payloads straight into
 * their buffers. Every record it hands out must be within the bounds and
 * carry a good checksum (rec_get must accept it again).
 */
static void fuzz_stream_into(const uint8_t *data, size_t size)
{
	static char dummy;
	struct stream *s = stream_new((struct chan *)&dummy);
	struct buf *dst = buf_new(REC_MAX_PAYLOAD), *again = buf_new(REC_HDR_SIZE + REC_MAX_PAYLOAD);
	const uint8_t *p;
	uint32_t type, t2, len;

	feed = data;
	feed_len = size;
	feed_off = 0;
	feed_chunk = size ? 1 + data[0] * 61 : 1;	/* 1 .. 15556 bytes a read */
	while (s && dst && again) {
		buf_discard(dst);
		if (stream_get_into(s, REC_MAX_PAYLOAD, &type, dst) != 0)
			break;
		FUZZ_CHECK(buf_len(dst) <= REC_MAX_PAYLOAD);
		buf_discard(again);
		FUZZ_CHECK(rec_put(again, type, buf_ptr(dst), (uint32_t)buf_len(dst)) == 0);
		FUZZ_CHECK(rec_get(again, REC_MAX_PAYLOAD, &t2, &p, &len) == 0);
		FUZZ_CHECK(t2 == type && len == buf_len(dst));
	}
	feed = NULL;
	buf_free(again);
	buf_free(dst);
	stream_free(s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* The loaders log each refusal: a million lines would be the run's cost. */
	log_init("fuzz-stream", LOG_NONE);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_result res;
	struct buf *again;
	uint8_t *copy;
	size_t n;

	/* A record never exceeds REC_MAX_PAYLOAD, so neither does a useful input. */
	if (size > REC_HDR_SIZE + (size_t)REC_MAX_PAYLOAD)
		return 0;
	fuzz_read(data, size, &res);
	fuzz_stream_into(data, size);
	if ((again = fuzz_reframe(data, size)) == NULL)
		return 0;
	/* Exactly its size on the heap, as libFuzzer's input is: ASan sees past the end. */
	n = buf_len(again);
	if (n > 0 && (copy = malloc(n)) != NULL) {
		memcpy(copy, buf_ptr(again), n);
		fuzz_read(copy, n, &res);
		fuzz_stream_into(copy, n);
		free(copy);
	}
	buf_free(again);
	return 0;
}

#ifdef FUZZ_MAKE_SEEDS
/* The seed corpus: valid streams as senders write them. */

static void fill_text(uint8_t *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = (uint8_t)"the quick brown fox jumps over the lazy dog\n"[(i + seed) % 44];
}

static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
	size_t i;

	for (i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

#define SEED_CHECK(expr) do {						\
	int r_ = (expr);						\
	if (r_ != 0) {							\
		fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__,	\
			#expr, km_strerror(r_));			\
		exit(1);						\
	}								\
} while (0)

/* Appends the record whose payload p holds, and empties p. */
static void seed_record(struct buf *s, uint32_t type, struct buf *p)
{
	SEED_CHECK(rec_put(s, type, buf_ptr(p), (uint32_t)buf_len(p)));
	buf_reset(p);
}

static void seed_header(struct buf *s, struct buf *p, enum stream_purpose purpose,
			uint64_t caps, bool extra)
{
	SEED_CHECK(buf_put(p, REC_MAGIC, 8));
	SEED_CHECK(rec_put_field_u64(p, HDR_VERSION_MAJOR, REC_VERSION));
	SEED_CHECK(rec_put_field_u64(p, HDR_VERSION_MINOR, 0));
	SEED_CHECK(rec_put_field_u64(p, HDR_CAPS, caps));
	if (extra)
		SEED_CHECK(rec_put_field(p, 77, "unknown to this reader", 22));
	SEED_CHECK(rec_put_field_u64(p, HDR_PURPOSE, purpose));
	seed_record(s, REC_HEADER, p);
}

static void seed_config(struct buf *s, struct buf *p, uint64_t mem, unsigned int nr)
{
	uint64_t slot[3] = { 0, mem, 0 };

	SEED_CHECK(rec_put_field_u64(p, ST_CFG_MEM_SIZE, mem));
	SEED_CHECK(rec_put_field_u64(p, ST_CFG_NR_VCPUS, nr));
	SEED_CHECK(rec_put_field_u64(p, ST_CFG_IRQCHIP, 1));
	SEED_CHECK(rec_put_field(p, ST_CFG_SLOT, slot, sizeof(slot)));
	SEED_CHECK(rec_put_field(p, ST_CFG_NAME, "seed-vm", 7));
	seed_record(s, REC_VM_CONFIG, p);
}

/* One REC_PAGES record: zero, raw, lz4 pages in the order of kinds[]. */
static void seed_pages(struct buf *s, struct buf *p, const char *kinds, bool compress,
		       unsigned int seed)
{
	static uint8_t page[PAGE_SIZE_4K] __attribute__((aligned(64)));
	struct pages_stats st = { 0 };
	unsigned int i;

	for (i = 0; kinds[i]; i++) {
		if (kinds[i] == 'z')
			memset(page, 0, sizeof(page));
		else if (kinds[i] == 'r')
			fill_random(page, sizeof(page), seed + i);
		else
			fill_text(page, sizeof(page), seed + i);
		SEED_CHECK(pages_put(p, (uint64_t)(seed * 16 + i) << 12, page, compress, &st));
	}
	seed_record(s, REC_PAGES, p);
}

static void seed_end(struct buf *s, struct buf *p)
{
	SEED_CHECK(rec_put_field_u64(p, 1, 1700000000000000000ULL));
	seed_record(s, REC_END, p);
}

static int seed_write(const char *dir, const char *name, struct buf *s)
{
	struct fuzz_result res;
	char path[4096];
	FILE *f;

	/* A seed that does not parse clean to REC_END would teach nothing. */
	fuzz_read(buf_ptr(s), buf_len(s), &res);
	if (res.refused || !res.end) {
		fprintf(stderr, "seed %s: %u of %u records refused, end %s\n", name,
			res.refused, res.records, res.end ? "read" : "missing");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (!(f = fopen(path, "wb")) || fwrite(buf_ptr(s), 1, buf_len(s), f) != buf_len(s) ||
	    fclose(f) != 0) {
		perror(path);
		return 1;
	}
	buf_reset(s);
	return 0;
}

int main(int argc, char **argv)
{
	struct buf *s = buf_new(1 << 20), *p = buf_new(1 << 20);
	int bad = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
		return 2;
	}
	if (!s || !p)
		return 1;

	/* A migration: header, config, pages of every kind over two rounds, state, end. */
	seed_header(s, p, STREAM_MIGRATE, STREAM_CAP_LZ4, false);
	seed_config(s, p, 64ULL << 20, 2);
	seed_pages(s, p, "zrlz", true, 1);
	SEED_CHECK(rec_put(s, REC_ROUND_END, NULL, 0));
	seed_pages(s, p, "llz", true, 2);
	SEED_CHECK(rec_put(s, REC_ROUND_END, NULL, 0));
	SEED_CHECK(rec_put_field(p, ST_VM_CLOCK, "0123456789abcdef", 16));
	seed_record(s, REC_VM_STATE, p);
	SEED_CHECK(rec_put_field_u64(p, ST_VCPU_ID, 0));
	SEED_CHECK(rec_put_field(p, ST_REGS, "regs", 4));
	seed_record(s, REC_VCPU_STATE, p);
	seed_end(s, p);
	bad |= seed_write(argv[1], "migrate", s);

	/* A snapshot without compression: raw and zero pages only. */
	seed_header(s, p, STREAM_SNAPSHOT, 0, false);
	seed_config(s, p, 128ULL << 20, 1);
	seed_pages(s, p, "rzr", false, 3);
	seed_end(s, p);
	bad |= seed_write(argv[1], "snapshot", s);

	/* Small ones: a header with a field from the future; one lz4 page. */
	seed_header(s, p, STREAM_MIGRATE, STREAM_CAP_LZ4, true);
	seed_pages(s, p, "l", true, 4);
	seed_end(s, p);
	bad |= seed_write(argv[1], "lz4-page", s);

	/* The peer gives up: REC_ERROR with a code and a text. */
	seed_header(s, p, STREAM_MIGRATE, 0, false);
	SEED_CHECK(rec_put_field_u64(p, 1, 5002));
	SEED_CHECK(rec_put_field(p, 2, "VM config: corrupt", 18));
	seed_record(s, REC_ERROR, p);
	seed_end(s, p);
	bad |= seed_write(argv[1], "error", s);

	/* A query to the daemon. */
	seed_header(s, p, STREAM_QUERY, 0, false);
	SEED_CHECK(rec_put_field(p, 1, "seed-vm", 7));
	seed_record(s, REC_QUERY, p);
	seed_end(s, p);
	bad |= seed_write(argv[1], "query", s);

	/* The last purpose readers accept (a dirty trace's header): the
	 * header check's upper bound is reached without the fuzzer's luck. */
	seed_header(s, p, STREAM_PURPOSE_LAST, 0, false);
	seed_end(s, p);
	bad |= seed_write(argv[1], "last-purpose", s);

	buf_free(s);
	buf_free(p);
	return bad;
}
#endif
