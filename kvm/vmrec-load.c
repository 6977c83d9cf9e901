/* The VM as records, apply side: a VM from records (vmrec.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "record.h"
#include "rundir.h"
#include "kvm/kvm.h"
#include "kvm/vmrec.h"
#include "kvm/x86/pc.h"

static const uint8_t zero_page[KM_PAGE_SIZE];

static int vmrec__why(char *why, size_t whylen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int vmrec__why(char *why, size_t whylen, int r, const char *fmt, ...)
{
	va_list ap;

	if (why && whylen) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return r;
}

/* The VM's name: what a run directory accepts (rundir_valid_name). */
static int vmrec__name(const uint8_t *p, uint32_t len, char *name, size_t max)
{
	const uint8_t *d;
	uint32_t dlen;
	int r;

	name[0] = '\0';
	if ((r = rec_find_field(p, len, ST_CFG_NAME, &d, &dlen)) != 0)
		return r == KM_ERR_END ? KM_ERR_CORRUPT : r;
	if (dlen == 0 || dlen >= max)
		return KM_ERR_CORRUPT;
	memcpy(name, d, dlen);
	name[dlen] = '\0';
	return rundir_valid_name(name) ? 0 : KM_ERR_CORRUPT;
}

int vmrec_parse_config(const uint8_t *p, uint32_t len, struct kvm_config *cfg, char *name,
		       size_t namelen, uint64_t max_mem, char *why, size_t whylen)
{
	int r;

	if ((r = state__parse_config(p, len, cfg)) != 0 ||
	    (r = vmrec__name(p, len, name, namelen)) != 0)
		return vmrec__why(why, whylen, r, "VM config: %s", km_strerror(r));
	if (cfg->mem_size > max_mem)
		return vmrec__why(why, whylen, KM_ERR_TOO_LARGE,
				  "VM config: %llu bytes of memory is too much",
				  (unsigned long long)cfg->mem_size);
	return 0;
}

int vmrec_create(struct kvm_config *cfg, const uint8_t *p, uint32_t len, struct kvm **out,
		 char *why, size_t whylen)
{
	enum state_platform platform;
	char reason[512] = "";
	int r;

	if ((r = state__config_platform(p, len, &platform)) != 0)
		return vmrec__why(why, whylen, r, "%s", r == KM_ERR_UNSUPPORTED ?
				  "the VM's platform is one this version does not know" :
				  "corrupt VM config");
	if ((r = kvm__create(cfg, out)) != 0)
		return vmrec__why(why, whylen, r, "cannot create the VM here: %s", km_strerror(r));
	if ((r = state__check_cpuid(*out, p, len, reason, sizeof(reason))) != 0)
		return vmrec__why(why, whylen, r, "this host cannot run the VM: %s",
				  r == KM_ERR_UNSUPPORTED ? reason : km_strerror(r));
	if (platform == STATE_PLATFORM_PC &&
	    (r = pc__create_from_config(*out, p, len, reason, sizeof(reason))) != 0)
		return vmrec__why(why, whylen, r, "%s", reason);
	return 0;
}

int vmrec_load_init(struct vmrec_loader *ld, struct kvm *kvm, bool lz4_ok)
{
	int r;

	memset(ld, 0, sizeof(*ld));
	ld->kvm = kvm;
	ld->lz4_ok = lz4_ok;
	if ((r = bitmap_init(&ld->written, memory__nr_pages(&kvm->mem))) != 0)
		return r;
	if (!(ld->scratch = malloc((size_t)VMREC_RUN * KM_PAGE_SIZE)))
		return -ENOMEM;
	return 0;
}

void vmrec_load_free(struct vmrec_loader *ld)
{
	bitmap_free(&ld->written);
	free(ld->scratch);
	ld->scratch = NULL;
}

/* Writes the pending run into the memfd. */
static int vmrec__flush(struct vmrec_loader *ld)
{
	struct iovec *iov = ld->iov;
	unsigned int cnt = ld->n;
	off_t off = (off_t)(ld->first * KM_PAGE_SIZE);
	ssize_t w;

	while (cnt > 0) {
		w = pwritev(ld->kvm->mem.memfd, iov, (int)cnt, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? km_errno() : -EIO;
		off += w;
		/* A short write: skip what went out, resume mid-page if need be. */
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0 && w > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	ld->n = 0;
	ld->used = 0;
	return 0;
}

/*
 * Before page n is queued: the pending run is written first if n does not
 * extend it, it is full, or an lz4 page needs a scratch slot and none is
 * left. Done before an lz4 page is expanded, so that the slot it takes is
 * never one the pending run still points at.
 */
static int vmrec__make_room(struct vmrec_loader *ld, uint64_t n, bool lz4)
{
	if (ld->n > 0 && (n != ld->first + ld->n || ld->n == VMREC_RUN ||
			  (lz4 && ld->used == VMREC_RUN)))
		return vmrec__flush(ld);
	return 0;
}

/* Queues page n's 4096 bytes at src (referenced until the run is written). */
static void vmrec__queue(struct vmrec_loader *ld, uint64_t n, const uint8_t *src)
{
	if (ld->n == 0)
		ld->first = n;
	ld->iov[ld->n].iov_base = (void *)(uintptr_t)src;
	ld->iov[ld->n].iov_len = KM_PAGE_SIZE;
	ld->n++;
}

/* One entry, its kind decoded once: where its 4096 bytes come from. */
static int vmrec__page(struct vmrec_loader *ld, uint64_t gpa, enum page_kind kind,
		       const uint8_t *data, uint32_t dlen)
{
	uint64_t n = memory__page_of(&ld->kvm->mem, gpa);
	uint8_t *dst;
	int r;

	if (n == UINT64_MAX)
		return vmrec__why(ld->why, sizeof(ld->why), KM_ERR_CORRUPT,
				  "page at 0x%llx is outside guest memory",
				  (unsigned long long)gpa);
	ld->pages++;
	/* Never written here: it reads as zero already, and stays unallocated. */
	if (kind == PAGE_ZERO && !bitmap_test(&ld->written, n))
		return 0;
	if ((r = vmrec__make_room(ld, n, kind == PAGE_LZ4)) != 0)
		return vmrec__why(ld->why, sizeof(ld->why), r, "writing pages to guest memory: %s",
				  km_strerror(r));
	switch (kind) {
	case PAGE_ZERO:
		vmrec__queue(ld, n, zero_page);
		break;
	case PAGE_RAW:
		if (dlen != KM_PAGE_SIZE)
			return vmrec__why(ld->why, sizeof(ld->why), KM_ERR_CORRUPT,
					  "page at 0x%llx: raw page of %u bytes",
					  (unsigned long long)gpa, dlen);
		vmrec__queue(ld, n, data);
		break;
	case PAGE_LZ4:
		if (!ld->lz4_ok)
			return vmrec__why(ld->why, sizeof(ld->why), KM_ERR_CORRUPT,
					  "an lz4 page, but lz4 was not agreed on");
		dst = ld->scratch + (size_t)ld->used * KM_PAGE_SIZE;
		if ((r = pages_expand(kind, data, dlen, dst)) != 0)
			return vmrec__why(ld->why, sizeof(ld->why), r, "page at 0x%llx: %s",
					  (unsigned long long)gpa, km_strerror(r));
		ld->used++;
		vmrec__queue(ld, n, dst);
		break;
	default:
		return vmrec__why(ld->why, sizeof(ld->why), KM_ERR_CORRUPT,
				  "page at 0x%llx: unknown kind %d", (unsigned long long)gpa, kind);
	}
	bitmap_set(&ld->written, n);
	return 0;
}

int vmrec_load_pages(struct vmrec_loader *ld, const uint8_t *p, uint32_t len)
{
	struct buf *f = buf_view(p, len);
	enum page_kind kind;
	const uint8_t *data;
	uint32_t dlen;
	uint64_t gpa;
	int r;

	ld->why[0] = '\0';
	if (!f)
		return -ENOMEM;
	while ((r = pages_get(f, &gpa, &kind, &data, &dlen)) == 0)
		if ((r = vmrec__page(ld, gpa, kind, data, dlen)) != 0)
			break;
	buf_free(f);
	if (r != KM_ERR_END) {
		/* What was queued points into the payload: drop it, the load failed. */
		ld->n = ld->used = 0;
		if (!ld->why[0])
			vmrec__why(ld->why, sizeof(ld->why), r, "page batch: %s", km_strerror(r));
		return r;
	}
	/* Raw pages are referenced from the payload: out before it goes. */
	if ((r = vmrec__flush(ld)) != 0)
		return vmrec__why(ld->why, sizeof(ld->why), r, "writing pages to guest memory: %s",
				  km_strerror(r));
	return 0;
}

int vmrec_load_state(struct vmrec_loader *ld, uint32_t type, const uint8_t *p, uint32_t len)
{
	int r;

	ld->why[0] = '\0';
	if (type != REC_VM_CONFIG && type != REC_VM_STATE && type != REC_VCPU_STATE)
		return vmrec__why(ld->why, sizeof(ld->why), KM_ERR_INVALID,
				  "record type %u is not state", type);
	if ((r = state__load_record(ld->kvm, &ld->state, type, p, len)) != 0)
		return vmrec__why(ld->why, sizeof(ld->why), r, "loading the VM state: %s",
				  km_strerror(r));
	return 0;
}

int vmrec_load_done(struct vmrec_loader *ld)
{
	int r = state__load_complete(ld->kvm, &ld->state);

	if (r != 0)
		return vmrec__why(ld->why, sizeof(ld->why), r, "loading the VM state: %s",
				  ld->state.have_config ? "a vCPU's state is missing" :
				  "the VM config is missing");
	return 0;
}
