/*
 * Unit tests of kvm/virtio-blk (and the virtio-mmio transport and split
 * virtqueues under it) without /dev/kvm: a VM of guest memory alone, an
 * image file in a temporary directory, and the test as the driver,
 * writing registers and rings as Linux's virtio_mmio and virtio_blk do.
 * Requests of every kind and their answers; broken rings (a descriptor
 * loop, a buffer outside RAM) stopping the queue; the image's lock; the
 * state blob's round trip, and its loader refusing what is wrong while
 * leaving the device as it was; the dirty-block trackers of checkpoints
 * and the block reads and writes of a restore, staged beside the image
 * (also on a file system that fills up, and by a restore killed midway).
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "buf.h"
#include "log.h"
#include "record.h"
#include "kvm/kvm.h"
#include "kvm/virtio-blk-int.h"
#include "kvm/x86/linux.h"

#define MEM		(8ULL << 20)
#define DISK		(1ULL << 20)
#define QNUM		16
#define DESC_GPA	0x10000ULL
#define AVAIL_GPA	0x11000ULL
#define USED_GPA	0x12000ULL
#define HDR_GPA		0x13000ULL
#define STATUS_GPA	0x13100ULL
#define DATA_GPA	0x20000ULL

struct rig {
	struct kvm *vm;
	struct virtio_blk *b;
	char dir[64], path[96];
};

static struct kvm *mem_vm(void)
{
	struct kvm *vm = calloc(1, sizeof(*vm));

	assert_non_null(vm);
	vm->vm_fd = -1;		/* no VM: the IRQ line is not driven */
	vm->mem.memfd = memfd_create("test-virtio-blk", MFD_CLOEXEC);
	assert_true(vm->mem.memfd >= 0);
	assert_int_equal(ftruncate(vm->mem.memfd, MEM), 0);
	vm->mem.base = mmap(NULL, MEM, PROT_READ | PROT_WRITE, MAP_SHARED, vm->mem.memfd, 0);
	assert_true(vm->mem.base != MAP_FAILED);
	vm->mem.size = MEM;
	vm->mem.nr_slots = 1;
	vm->mem.slots[0] = (struct kvm_slot){ .gpa = 0, .size = MEM, .hva = vm->mem.base };
	return vm;
}

static uint32_t rd(struct rig *r, uint32_t off)
{
	uint32_t v;

	virtio_blk__mmio(r->b, LINUX_VIRTIO_BLK_GPA + off, false, (uint8_t *)&v, 4);
	return v;
}

static void wr(struct rig *r, uint32_t off, uint32_t v)
{
	virtio_blk__mmio(r->b, LINUX_VIRTIO_BLK_GPA + off, true, (uint8_t *)&v, 4);
}

static uint8_t *gpa(struct rig *r, uint64_t a) { return r->vm->mem.base + a; }

/* A VM with a 1 MiB disk, negotiated and with its queue set up, as Linux leaves it. */
static void rig_up(struct rig *r)
{
	int fd;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/test-virtio-blk.XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	snprintf(r->path, sizeof(r->path), "%s/disk.img", r->dir);
	fd = open(r->path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK), 0);
	close(fd);
	r->vm = mem_vm();
	assert_ok(virtio_blk__open(r->path, 0, &r->b));
	assert_ok(virtio_blk__attach(r->b, r->vm));

	assert_int_equal(rd(r, 0x000), 0x74726976);
	assert_int_equal(rd(r, 0x004), 2);
	assert_int_equal(rd(r, 0x008), 2);
	wr(r, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(r, 0x014, 1);
	assert_true(rd(r, 0x010) & 1);			/* VERSION_1 (bit 32) */
	wr(r, 0x014, 0);
	assert_true(rd(r, 0x010) & (1U << VIRTIO_BLK_F_FLUSH));
	wr(r, 0x024, 1);
	wr(r, 0x020, 1);
	wr(r, 0x024, 0);
	wr(r, 0x020, 1U << VIRTIO_BLK_F_FLUSH);
	wr(r, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_true(rd(r, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	wr(r, 0x030, 0);
	assert_int_equal(rd(r, 0x034), VIRTIO_BLK_QUEUE_MAX);
	wr(r, 0x038, QNUM);
	wr(r, 0x080, (uint32_t)DESC_GPA);
	wr(r, 0x090, (uint32_t)AVAIL_GPA);
	wr(r, 0x0a0, (uint32_t)USED_GPA);
	wr(r, 0x044, 1);
	assert_int_equal(rd(r, 0x044), 1);
	wr(r, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
		     VIRTIO_STATUS_DRIVER_OK);
}

static void rig_down(struct rig *r)
{
	virtio_blk__destroy(r->b);
	munmap(r->vm->mem.base, MEM);
	close(r->vm->mem.memfd);
	free(r->vm);
	unlink(r->path);
	rmdir(r->dir);
}

static void desc(struct rig *r, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	uint8_t *d = gpa(r, DESC_GPA + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* Makes chain head available and notifies; returns the used entry's length. */
static uint32_t submit(struct rig *r, uint16_t head)
{
	uint16_t idx, used0, used1;
	uint32_t len;

	memcpy(&idx, gpa(r, AVAIL_GPA + 2), 2);
	memcpy(gpa(r, AVAIL_GPA + 4 + 2 * (idx % QNUM)), &head, 2);
	idx++;
	memcpy(gpa(r, AVAIL_GPA + 2), &idx, 2);
	memcpy(&used0, gpa(r, USED_GPA + 2), 2);
	wr(r, 0x050, 0);
	memcpy(&used1, gpa(r, USED_GPA + 2), 2);
	assert_int_equal((uint16_t)(used1 - used0), 1);
	memcpy(&len, gpa(r, USED_GPA + 4 + 8 * (used0 % QNUM) + 4), 4);
	return len;
}

/* A request of type at sector with a data buffer of len bytes (0: none); its status byte. */
static uint8_t request(struct rig *r, uint32_t type, uint64_t sector, uint32_t len, bool in,
		       uint32_t *used_len)
{
	uint8_t hdr[16] = { 0 };

	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memcpy(gpa(r, HDR_GPA), hdr, 16);
	*gpa(r, STATUS_GPA) = 0xee;
	desc(r, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, len ? 1 : 2);
	desc(r, 1, DATA_GPA, len, VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0), 2);
	desc(r, 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
	*used_len = submit(r, 0);
	return *gpa(r, STATUS_GPA);
}

static void test_requests(void **state)
{
	struct virtio_blk_stats st;
	struct rig r;
	uint8_t file[1024];
	uint32_t ul;
	unsigned int i;
	int fd;

	rig_up(&r);
	for (i = 0; i < 1024; i++)
		gpa(&r, DATA_GPA)[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(request(&r, 1, 2, 1024, false, &ul), 0);	/* OUT */
	assert_int_equal(ul, 1);
	assert_int_equal(rd(&r, 0x060), VIRTIO_INT_USED);
	assert_int_equal(r.b->mmio.st.irq_level, 1);
	wr(&r, 0x064, VIRTIO_INT_USED);
	assert_int_equal(r.b->mmio.st.irq_level, 0);
	fd = open(r.path, O_RDONLY);
	assert_int_equal(pread(fd, file, 1024, 1024), 1024);
	close(fd);
	assert_memory_equal(file, gpa(&r, DATA_GPA), 1024);

	memset(gpa(&r, DATA_GPA), 0, 1024);
	assert_int_equal(request(&r, 0, 2, 1024, true, &ul), 0);	/* IN */
	assert_int_equal(ul, 1025);
	assert_memory_equal(file, gpa(&r, DATA_GPA), 1024);
	assert_int_equal(request(&r, 4, 0, 0, false, &ul), 0);		/* FLUSH */
	assert_int_equal(request(&r, 8, 0, 20, true, &ul), 0);		/* GET_ID */
	assert_int_equal(ul, 21);
	assert_memory_equal(gpa(&r, DATA_GPA), "disk.img\0\0\0\0", 12);
	assert_int_equal(request(&r, 11, 0, 0, false, &ul), 2);		/* DISCARD: UNSUPP */
	assert_int_equal(request(&r, 0, DISK / 512, 512, true, &ul), 1);	/* past the end */
	assert_int_equal(request(&r, 0, DISK / 512 - 1, 1024, true, &ul), 1);
	assert_int_equal(request(&r, 0, UINT64_MAX / 256, 512, true, &ul), 1);
	assert_int_equal(request(&r, 1, 0, 100, false, &ul), 1);		/* not whole sectors */
	virtio_blk__stats(r.b, &st);
	assert_int_equal(st.reads, 1);
	assert_int_equal(st.writes, 1);
	assert_int_equal(st.flushes, 1);
	assert_int_equal(st.get_ids, 1);
	assert_int_equal(st.unsupported, 1);
	assert_int_equal(st.errors, 4);
	assert_int_equal(st.bytes_written, 1024);
	rig_down(&r);
}

static void test_broken_rings(void **state)
{
	struct rig r;
	uint16_t idx;

	rig_up(&r);
	/* A loop: 0 -> 1 -> 0. The device stops at the queue's size and asks for a reset. */
	desc(&r, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
	desc(&r, 1, DATA_GPA, 16, VIRTQ_DESC_F_NEXT, 0);
	memset(gpa(&r, AVAIL_GPA + 4), 0, 2);
	idx = 1;
	memcpy(gpa(&r, AVAIL_GPA + 2), &idx, 2);
	wr(&r, 0x050, 0);
	assert_true(rd(&r, 0x070) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(rd(&r, 0x060), VIRTIO_INT_CONFIG);
	assert_int_equal(r.b->mmio.vqs[0].st.last_avail, 0);
	/* A reset clears it all and lowers the line. */
	wr(&r, 0x070, 0);
	assert_int_equal(rd(&r, 0x070), 0);
	assert_int_equal(r.b->mmio.st.irq_level, 0);
	rig_down(&r);

	rig_up(&r);
	/* A buffer outside guest RAM. */
	desc(&r, 0, MEM - 8, 16, 0, 0);
	memset(gpa(&r, AVAIL_GPA + 4), 0, 2);
	idx = 1;
	memcpy(gpa(&r, AVAIL_GPA + 2), &idx, 2);
	wr(&r, 0x050, 0);
	assert_true(rd(&r, 0x070) & VIRTIO_STATUS_NEEDS_RESET);
	rig_down(&r);

	rig_up(&r);
	/* A queue whose rings lie outside RAM, or of a size not a power of two, is not made ready. */
	wr(&r, 0x044, 0);
	wr(&r, 0x0a0, (uint32_t)(MEM - 16));
	wr(&r, 0x044, 1);
	assert_int_equal(rd(&r, 0x044), 0);
	wr(&r, 0x0a0, (uint32_t)USED_GPA);
	wr(&r, 0x038, 12);
	wr(&r, 0x044, 1);
	assert_int_equal(rd(&r, 0x044), 0);
	rig_down(&r);
}

static void test_lock(void **state)
{
	struct virtio_blk *b2 = NULL;
	struct rig r;

	rig_up(&r);
	assert_err(virtio_blk__open(r.path, 0, &b2), -EBUSY);
	assert_err(virtio_blk__open(r.path, VIRTIO_BLK_RO, &b2), -EBUSY);
	assert_ok(virtio_blk__open(r.path, VIRTIO_BLK_NOLOCK, &b2));
	assert_err(virtio_blk__lock(b2), -EBUSY);
	virtio_blk__unlock(r.b);
	assert_ok(virtio_blk__lock(b2));
	assert_err(virtio_blk__lock(r.b), -EBUSY);
	assert_string_equal(virtio_blk__path(b2), r.path);
	virtio_blk__destroy(b2);
	assert_ok(virtio_blk__lock(r.b));
	rig_down(&r);
}

/* Field by field: the structs have padding, which a load need not copy. */
static void same_queue(const struct virtqueue_state *a, const struct virtqueue_state *b)
{
	assert_int_equal(a->num, b->num);
	assert_int_equal(a->ready, b->ready);
	assert_int_equal(a->desc, b->desc);
	assert_int_equal(a->avail, b->avail);
	assert_int_equal(a->used, b->used);
	assert_int_equal(a->last_avail, b->last_avail);
	assert_int_equal(a->used_idx, b->used_idx);
}

static void test_save_load(void **state)
{
	struct virtio_mmio_state before;
	struct buf *blob = buf_new(4096), *bad;
	struct virtqueue_state q0;
	struct virtio_blk *b2;
	struct rig r;
	uint32_t ul;
	size_t n, i;

	rig_up(&r);
	assert_int_equal(request(&r, 0, 0, 512, true, &ul), 0);	/* interrupt left pending */
	assert_ok(virtio_blk__save(r.b, blob));
	assert_ok(virtio_blk__open(r.path, VIRTIO_BLK_NOLOCK, &b2));
	b2->kvm = r.vm;		/* attached in all but kvm->blk, which is r.b */
	b2->mmio.kvm = r.vm;
	assert_ok(virtio_blk__load(b2, buf_ptr(blob), (uint32_t)buf_len(blob)));
	assert_memory_equal(&b2->mmio.st, &r.b->mmio.st, sizeof(b2->mmio.st));
	same_queue(&b2->mmio.vqs[0].st, &r.b->mmio.vqs[0].st);
	assert_int_equal(b2->mmio.st.irq_level, 1);
	assert_non_null(b2->mmio.vqs[0].desc_hva);

	/* Refusals leave b2 as it was. */
	before = b2->mmio.st;
	q0 = b2->mmio.vqs[0].st;
	n = buf_len(blob);
	for (i = 0; i < n; i++)
		assert_err(virtio_blk__load(b2, buf_ptr(blob), (uint32_t)i), KM_ERR_CORRUPT);
	bad = buf_new(8192);
	assert_ok(buf_put(bad, buf_ptr(blob), n));
	assert_ok(rec_put_field_u64(bad, 99, 1));		/* an unknown field */
	assert_err(virtio_blk__load(b2, buf_ptr(bad), (uint32_t)buf_len(bad)), KM_ERR_CORRUPT);
	buf_reset(bad);
	assert_ok(buf_put(bad, buf_ptr(blob), n));
	assert_ok(rec_put_field_u64(bad, 2, 1));		/* the version twice */
	assert_err(virtio_blk__load(b2, buf_ptr(bad), (uint32_t)buf_len(bad)), KM_ERR_CORRUPT);
	buf_reset(bad);
	assert_ok(buf_put(bad, buf_ptr(blob), n));
	/* The version's value: after the magic field (8 + 6 bytes) and its own tag and length. */
	((uint8_t *)buf_ptr(bad))[14 + 8] = 2;
	assert_err(virtio_blk__load(b2, buf_ptr(bad), (uint32_t)buf_len(bad)), KM_ERR_VERSION);
	buf_free(bad);
	assert_memory_equal(&b2->mmio.st, &before, sizeof(before));
	same_queue(&b2->mmio.vqs[0].st, &q0);

	/* What a broken source (or stream) could say, saved through the real writer. */
#define REFUSED(field, value, want) do {					\
		__typeof__(field) saved_ = field;				\
		buf_reset(blob);						\
		field = value;							\
		assert_ok(virtio_blk__save(r.b, blob));				\
		field = saved_;							\
		assert_err(virtio_blk__load(b2, buf_ptr(blob), (uint32_t)buf_len(blob)), want); \
	} while (0)
	REFUSED(r.b->mmio.vqs[0].st.num, 12, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.vqs[0].st.ready, 2, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.vqs[0].st.last_avail, 0, 0);		/* any index: accepted */
	REFUSED(r.b->mmio.vqs[0].st.num, 512, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.vqs[0].st.desc, MEM - 64, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.vqs[0].st.used, USED_GPA + 2, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.st.irq_level, 0, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.st.int_status, 4, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.st.status, 0x100, KM_ERR_CORRUPT);
	REFUSED(r.b->mmio.st.drv_features, 1ULL << 40, KM_ERR_CORRUPT);
	REFUSED(r.b->size, DISK * 2, KM_ERR_INVALID);
	REFUSED(r.b->mmio.features, 0, KM_ERR_INVALID);

	/* What a guest may write to a queue not ready, or ack before FEATURES_OK, travels as it is. */
	buf_reset(blob);
	wr(&r, 0x044, 0);
	wr(&r, 0x038, 1000);
	wr(&r, 0x080, 0xfffffff0);
	wr(&r, 0x070, 0);
	wr(&r, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER);
	wr(&r, 0x024, 1);
	wr(&r, 0x020, 0xffffffff);
	wr(&r, 0x070, VIRTIO_STATUS_ACK | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
	assert_false(rd(&r, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	wr(&r, 0x038, 1000);
	assert_ok(virtio_blk__save(r.b, blob));
	assert_ok(virtio_blk__load(b2, buf_ptr(blob), (uint32_t)buf_len(blob)));
	assert_int_equal(b2->mmio.vqs[0].st.num, 1000);
	assert_int_equal(b2->mmio.st.drv_features, 0xffffffff00000000ULL);

	virtio_blk__destroy(b2);
	buf_free(blob);
	rig_down(&r);
}

/* The blocks set in a tracker's read, as a string of their numbers: "0 1 ". */
static const char *dirty_set(struct virtio_blk *b, int t)
{
	static char out[256];
	struct bitmap got;
	uint64_t n;
	size_t k = 0;

	assert_ok(bitmap_init(&got, virtio_blk__nr_blocks(b)));
	virtio_blk__dirty_read(b, t, &got);
	out[0] = 0;
	for (n = bitmap_next_set(&got, 0); n < got.nbits && k < sizeof(out) - 24;
	     n = bitmap_next_set(&got, n + 1))
		k += (size_t)snprintf(out + k, sizeof(out) - k, "%llu ", (unsigned long long)n);
	bitmap_free(&got);
	return out;
}

static uint64_t dirty_count(struct virtio_blk *b, int t)
{
	struct bitmap got;
	uint64_t n;

	assert_ok(bitmap_init(&got, virtio_blk__nr_blocks(b)));
	virtio_blk__dirty_read(b, t, &got);
	n = bitmap_count(&got);
	bitmap_free(&got);
	return n;
}

static void test_dirty_blocks(void **state)
{
	uint8_t blk[VIRTIO_BLK_BLOCK], back[2 * VIRTIO_BLK_BLOCK];
	int t[VIRTIO_BLK_TRACKERS], i;
	struct rig r;
	uint32_t ul;

	rig_up(&r);
	assert_int_equal(virtio_blk__nr_blocks(r.b), DISK / VIRTIO_BLK_BLOCK);
	for (i = 0; i < VIRTIO_BLK_TRACKERS; i++)
		assert_true((t[i] = virtio_blk__track(r.b)) >= 0);
	assert_err(virtio_blk__track(r.b), -EBUSY);
	/* A tracker starts with every block owed, and a read clears it. */
	assert_int_equal(dirty_count(r.b, t[0]), DISK / VIRTIO_BLK_BLOCK);
	assert_string_equal(dirty_set(r.b, t[0]), "");
	virtio_blk__untrack(r.b, t[1]);
	virtio_blk__untrack(r.b, t[2]);
	virtio_blk__untrack(r.b, t[3]);

	/* A write within block 1, one across blocks 2 and 3; a read marks nothing. */
	assert_int_equal(request(&r, 1, 9, 1024, false, &ul), 0);
	assert_int_equal(request(&r, 1, 23, 1024, false, &ul), 0);
	assert_int_equal(request(&r, 0, 40, 4096, true, &ul), 0);
	assert_string_equal(dirty_set(r.b, t[0]), "1 2 3 ");
	assert_string_equal(dirty_set(r.b, t[0]), "");
	/* A failed write (past the end) marks nothing; the last sector marks the last block. */
	assert_int_equal(request(&r, 1, DISK / 512 - 1, 1024, false, &ul), 1);
	assert_int_equal(request(&r, 1, DISK / 512 - 1, 512, false, &ul), 0);
	assert_string_equal(dirty_set(r.b, t[0]), "255 ");
	/* A tracker started now misses nothing before it either: it starts full. */
	assert_true((t[1] = virtio_blk__track(r.b)) >= 0);
	assert_int_equal(request(&r, 1, 0, 512, false, &ul), 0);
	assert_string_equal(dirty_set(r.b, t[0]), "0 ");
	assert_int_equal(dirty_count(r.b, t[1]), DISK / VIRTIO_BLK_BLOCK);

	/* A restore's writes: a block of data, a block of zeros; reads back, marking nothing. */
	memset(blk, 0x5a, sizeof(blk));
	assert_ok(virtio_blk__write_block(r.b, 5 * VIRTIO_BLK_BLOCK, blk));
	assert_ok(virtio_blk__write_block(r.b, 6 * VIRTIO_BLK_BLOCK, blk));
	assert_ok(virtio_blk__write_block(r.b, 6 * VIRTIO_BLK_BLOCK, NULL));
	assert_ok(virtio_blk__read_blocks(r.b, 5, 2, back));
	assert_memory_equal(back, blk, VIRTIO_BLK_BLOCK);
	for (i = 0; i < (int)VIRTIO_BLK_BLOCK; i++)
		assert_int_equal(back[VIRTIO_BLK_BLOCK + i], 0);
	assert_string_equal(dirty_set(r.b, t[0]), "");
	assert_err(virtio_blk__write_block(r.b, 100, blk), KM_ERR_INVALID);
	assert_err(virtio_blk__write_block(r.b, DISK, blk), KM_ERR_INVALID);
	assert_err(virtio_blk__read_blocks(r.b, DISK / VIRTIO_BLK_BLOCK, 1, back), KM_ERR_INVALID);
	virtio_blk__untrack(r.b, t[0]);
	virtio_blk__untrack(r.b, t[1]);
	rig_down(&r);
}

/* Block n of the image file at path, read apart from the disk. */
static uint8_t file_byte(const char *path, uint64_t n)
{
	uint8_t c = 0xee;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)(n * VIRTIO_BLK_BLOCK)), 1);
	close(fd);
	return c;
}

/* Entries of dir whose names begin with prefix. */
static int entries(const char *dir, const char *prefix)
{
	struct dirent *de;
	DIR *d = opendir(dir);
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return n;
}

/*
 * A restore's staged writes: beside the image until the commit, read back
 * through the disk; an abort leaves the image and its lock as they were;
 * a commit through a symlink replaces the file it names, mode and lock
 * kept, the link a link.
 */
static void test_stage(void **state)
{
	uint8_t blk[VIRTIO_BLK_BLOCK], back[VIRTIO_BLK_BLOCK];
	struct virtio_blk *b2 = NULL;
	char link[128];
	struct stat st;
	struct rig r;

	rig_up(&r);
	memset(blk, 0x11, sizeof(blk));
	assert_ok(virtio_blk__write_block(r.b, 3 * VIRTIO_BLK_BLOCK, blk));
	assert_int_equal(chmod(r.path, 0640), 0);
	assert_ok(virtio_blk__stage(r.b));
	assert_err(virtio_blk__stage(r.b), KM_ERR_STATE);
	assert_int_equal(entries(r.dir, ".disk.img.restore-"), 1);
	memset(blk, 0x22, sizeof(blk));
	assert_ok(virtio_blk__write_block(r.b, 4 * VIRTIO_BLK_BLOCK, blk));
	assert_ok(virtio_blk__read_blocks(r.b, 4, 1, back));
	assert_memory_equal(back, blk, VIRTIO_BLK_BLOCK);
	/* The staged file starts empty: the restore writes every block it holds. */
	assert_ok(virtio_blk__read_blocks(r.b, 3, 1, back));
	assert_int_equal(back[0], 0);
	assert_int_equal(file_byte(r.path, 3), 0x11);
	assert_int_equal(file_byte(r.path, 4), 0);
	virtio_blk__stage_abort(r.b);
	assert_int_equal(entries(r.dir, ".disk.img.restore-"), 0);
	assert_int_equal(file_byte(r.path, 3), 0x11);
	assert_int_equal(file_byte(r.path, 4), 0);
	assert_ok(virtio_blk__read_blocks(r.b, 3, 1, back));
	assert_int_equal(back[0], 0x11);
	assert_err(virtio_blk__open(r.path, 0, &b2), -EBUSY);
	virtio_blk__destroy(r.b);

	/* Through a symlink, as a config may name the image. */
	snprintf(link, sizeof(link), "%s/link.img", r.dir);
	assert_int_equal(symlink(r.path, link), 0);
	assert_ok(virtio_blk__open(link, 0, &r.b));
	assert_ok(virtio_blk__attach(r.b, r.vm));
	assert_ok(virtio_blk__stage(r.b));
	assert_int_equal(entries(r.dir, ".disk.img.restore-"), 1);
	memset(blk, 0x33, sizeof(blk));
	assert_ok(virtio_blk__write_block(r.b, 5 * VIRTIO_BLK_BLOCK, blk));
	assert_ok(virtio_blk__stage_commit(r.b));
	assert_int_equal(entries(r.dir, ".disk.img.restore-"), 0);
	assert_int_equal(file_byte(r.path, 5), 0x33);
	assert_int_equal(file_byte(r.path, 3), 0);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(stat(r.path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal((uint64_t)st.st_size, DISK);
	assert_err(virtio_blk__open(r.path, 0, &b2), -EBUSY);
	assert_ok(virtio_blk__read_blocks(r.b, 5, 1, back));
	assert_memory_equal(back, blk, VIRTIO_BLK_BLOCK);
	/* Committed: nothing to take back. */
	virtio_blk__stage_abort(r.b);
	assert_int_equal(file_byte(r.path, 5), 0x33);
	/* A read-only disk, or one not locked, is not staged. */
	virtio_blk__unlock(r.b);
	assert_err(virtio_blk__stage(r.b), KM_ERR_STATE);
	assert_ok(virtio_blk__open(r.path, VIRTIO_BLK_RO | VIRTIO_BLK_NOLOCK, &b2));
	assert_err(virtio_blk__stage(b2), KM_ERR_STATE);
	virtio_blk__destroy(b2);
	unlink(link);
	rig_down(&r);
}

/* DIR/disk.img (its path into path), DISK bytes, its first block all c. */
static void make_image(char *path, size_t len, const char *dir, uint8_t c)
{
	uint8_t blk[VIRTIO_BLK_BLOCK];
	int fd;

	snprintf(path, len, "%s/disk.img", dir);
	memset(blk, c, sizeof(blk));
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, DISK), 0);
	assert_int_equal(pwrite(fd, blk, sizeof(blk), 0), (ssize_t)sizeof(blk));
	close(fd);
}

/*
 * The file system fills up while a restore writes: the write fails with
 * ENOSPC, and the abort leaves the image as it was, nothing beside it.
 * On a tmpfs of 64 KiB (root only: skipped elsewhere).
 */
static void test_stage_full(void **state)
{
	char dir[64], path[96];
	uint8_t blk[VIRTIO_BLK_BLOCK];
	struct virtio_blk *b = NULL;
	uint64_t i;
	int r = 0;

	snprintf(dir, sizeof(dir), "/tmp/test-virtio-blk.XXXXXX");
	assert_non_null(mkdtemp(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") != 0) {
		print_message("# cannot mount a tmpfs here: %s\n", strerror(errno));
		rmdir(dir);
		skip();
	}
	make_image(path, sizeof(path), dir, 0x44);
	assert_ok(virtio_blk__open(path, 0, &b));
	assert_ok(virtio_blk__stage(b));
	memset(blk, 0x55, sizeof(blk));
	for (i = 0; i < DISK / VIRTIO_BLK_BLOCK && !r; i++)
		r = virtio_blk__write_block(b, i * VIRTIO_BLK_BLOCK, blk);
	assert_int_equal(r, -ENOSPC);
	assert_true(i > 1 && i < DISK / VIRTIO_BLK_BLOCK);
	virtio_blk__stage_abort(b);
	assert_int_equal(entries(dir, ".disk.img.restore-"), 0);
	assert_int_equal(file_byte(path, 0), 0x44);
	virtio_blk__destroy(b);
	assert_int_equal(umount(dir), 0);
	rmdir(dir);
}

/*
 * A restore killed (SIGKILL) while it writes: the image is as it was, the
 * staged file it left is not locked, and the next restore's stage removes
 * it.
 */
static void test_stage_killed(void **state)
{
	char dir[64], path[96];
	uint8_t blk[VIRTIO_BLK_BLOCK];
	struct virtio_blk *b = NULL;
	int st;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/test-virtio-blk.XXXXXX");
	assert_non_null(mkdtemp(dir));
	make_image(path, sizeof(path), dir, 0x66);
	if ((pid = fork()) == 0) {
		memset(blk, 0x77, sizeof(blk));
		if (virtio_blk__open(path, 0, &b) != 0 || virtio_blk__stage(b) != 0 ||
		    virtio_blk__write_block(b, 0, blk) != 0)
			_exit(1);
		raise(SIGKILL);
		_exit(2);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	assert_int_equal(file_byte(path, 0), 0x66);
	assert_int_equal(entries(dir, ".disk.img.restore-"), 1);
	assert_ok(virtio_blk__open(path, 0, &b));
	assert_ok(virtio_blk__stage(b));
	assert_int_equal(entries(dir, ".disk.img.restore-"), 1);	/* ours alone */
	virtio_blk__destroy(b);
	assert_int_equal(entries(dir, ".disk.img.restore-"), 0);
	assert_int_equal(file_byte(path, 0), 0x66);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_requests),
		cmocka_unit_test(test_broken_rings),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_dirty_blocks),
		cmocka_unit_test(test_stage),
		cmocka_unit_test(test_stage_full),
		cmocka_unit_test(test_stage_killed),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("test-virtio-blk", LOG_NONE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
