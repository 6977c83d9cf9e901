/* VM statistics for query-stats and kvm-run's exit report. See stats.h. */
#include <stdio.h>
#include <sys/resource.h>

#include "kvm/kvm.h"
#include "kvm/kvm-cpu.h"
#include "kvm/lazymem.h"
#include "kvm/stats.h"
#include "kvm/virtio-blk.h"

/* One vCPU's progress summary and its counter rate per second over the run. */
/* The longest stall the guest itself felt (its progress reports' R8), ms. */
static double stats__felt_ms(const struct kvm *kvm, const struct progress_vcpu *p)
{
	return kvm->tsc_khz ? (double)p->max_guest_gap_tsc / (double)kvm->tsc_khz : 0.0;
}

static double stats__vcpu(struct kvm *kvm, unsigned int i, struct progress_vcpu *p)
{
	double secs;

	progress__get(&kvm->progress, i, p);
	secs = (double)(p->last_ns - p->first_ns) / 1e9;
	if (p->reports > 1 && secs > 0)
		return (double)(p->counter - p->first_counter) / secs;
	return 0;
}

json_t *stats__dirty(struct kvm *kvm)
{
	struct dirty_stats d;
	unsigned int i, subs = 0;
	bool logging;

	dirty__get_stats(&kvm->dirty, &d, &logging);
	for (i = 0; i < DIRTY_MAX_SUBS; i++)
		subs += kvm->dirty.subs[i].active;
	return json_pack("{s:s, s:s, s:b, s:i, s:I, s:f, s:f, s:f, s:I, s:I, s:I, s:f, s:f}",
			 "backend", dirty__backend_name(kvm->dirty.backend),
			 "mode", dirty__mode_name(kvm->dirty.mode),
			 "logging", logging,
			 "subscribers", (int)subs,
			 "harvests", (json_int_t)d.harvests,
			 "harvest-ms-last", (double)d.harvest_ns_last / 1e6,
			 "harvest-ms-avg", d.harvests ?
				(double)d.harvest_ns_total / 1e6 / (double)d.harvests : 0.0,
			 "harvest-ms-max", (double)d.harvest_ns_max / 1e6,
			 "pages-harvested", (json_int_t)d.pages_harvested,
			 "vmm-pages", (json_int_t)d.vmm_pages,
			 "ring-full-exits", (json_int_t)d.ring_full_exits,
			 "enable-ms-last", (double)d.enable_ns_last / 1e6,
			 "disable-ms-last", (double)d.disable_ns_last / 1e6);
}

json_t *stats__query(struct kvm *kvm)
{
	struct kvm_exit_stats *e = &kvm->exits;
	uint64_t now = kvm__now_ns(), resident = 0;
	json_t *vcpus = json_array(), *o;
	struct lazymem_stats lz;

	unsigned int i;

	for (i = 0; i < kvm->nr_cpus; i++) {
		struct progress_vcpu p;
		double rate = stats__vcpu(kvm, i, &p);

		json_array_append_new(vcpus, json_pack(
			"{s:i, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:b}",
			"id", (int)i,
			"progress", (json_int_t)p.counter,
			"first-progress", (json_int_t)p.first_counter,
			"reports", (json_int_t)p.reports,
			"rate", rate,
			"last-report-age-ms", p.reports ? (double)(now - p.last_ns) / 1e6 : -1.0,
			"max-report-gap-ms", (double)p.max_gap_ns / 1e6,
			"max-guest-stall-ms", stats__felt_ms(kvm, &p),
			"finished", kvm->cpus[i]->finished));
	}
	memory__resident(&kvm->mem, &resident);
	o = json_pack("{s:f, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:o, "
		      "s:{s:I, s:I}}",
		      "uptime-ms", kvm->start_ns ? (double)(now - kvm->start_ns) / 1e6 : 0.0,
		      "exits",
		      "io", (json_int_t)atomic_load(&e->io),
		      "mmio", (json_int_t)atomic_load(&e->mmio),
		      "hlt", (json_int_t)atomic_load(&e->hlt),
		      "shutdown", (json_int_t)atomic_load(&e->shutdown),
		      "intr", (json_int_t)atomic_load(&e->intr),
		      "fail-entry", (json_int_t)atomic_load(&e->fail_entry),
		      "internal-error", (json_int_t)atomic_load(&e->internal_error),
		      "hypercalls", (json_int_t)atomic_load(&e->hypercalls),
		      "other", (json_int_t)atomic_load(&e->other),
		      "dirty-ring-full", (json_int_t)atomic_load(&e->dirty_ring_full),
		      "vcpus", vcpus,
		      "memory",
		      "size", (json_int_t)kvm->mem.size,
		      "resident", (json_int_t)resident);
	if (o)
		json_object_set_new(o, "dirty", stats__dirty(kvm));
	if (o && kvm->blk) {
		struct virtio_blk_stats d;

		virtio_blk__stats(kvm->blk, &d);
		json_object_set_new(o, "disk", json_pack(
			"{s:s, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			"path", virtio_blk__path(kvm->blk),
			"size", (json_int_t)virtio_blk__size(kvm->blk),
			"read-only", virtio_blk__ro(kvm->blk),
			"reads", (json_int_t)d.reads,
			"writes", (json_int_t)d.writes,
			"flushes", (json_int_t)d.flushes,
			"get-ids", (json_int_t)d.get_ids,
			"unsupported", (json_int_t)d.unsupported,
			"errors", (json_int_t)d.errors,
			"bytes-read", (json_int_t)d.bytes_read,
			"bytes-written", (json_int_t)d.bytes_written));
	}
	if (o && lazymem__stats(kvm, &lz))
		json_object_set_new(o, "lazy-restore", json_pack(
			"{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
			"mode", lz.prefetch ? "prefetch" : "touch",
			"active", lz.active,
			"absent", (json_int_t)lz.absent,
			"total", (json_int_t)lz.total,
			"touched", (json_int_t)lz.faults,
			"prefetched", (json_int_t)lz.prefetched,
			"zero-filled", (json_int_t)lz.zero_faults,
			"max-wait-ms", lz.max_fault_ns / 1e6,
			"done-ms", lz.done_ns / 1e6));
	return o;
}

void stats__print(struct kvm *kvm, FILE *f)
{
	struct kvm_exit_stats *e = &kvm->exits;
	uint64_t now = kvm__now_ns(), resident = 0;
	unsigned int i;

	memory__resident(&kvm->mem, &resident);
	fprintf(f, "VM %s: %s (%s%s%s)\n", kvm->name, kvm__state_name(kvm->state),
		kvm__stop_reason_name(kvm->stop_reason), kvm->stop_detail[0] ? ": " : "",
		kvm->stop_detail);
	fprintf(f, "  uptime        %.3f s\n",
		kvm->start_ns ? (double)(now - kvm->start_ns) / 1e9 : 0.0);
	fprintf(f, "  memory        %llu MiB, %llu MiB resident\n",
		(unsigned long long)(kvm->mem.size >> 20),
		(unsigned long long)(resident >> 20));
	{
		struct rusage ru;

		if (getrusage(RUSAGE_SELF, &ru) == 0)
			fprintf(f, "  peak RSS      %ld MiB (the whole kvm-run process)\n",
				ru.ru_maxrss / 1024);
	}
	fprintf(f, "  exits         io %llu  mmio %llu  hypercalls %llu  intr %llu  hlt %llu  "
		"shutdown %llu  fail-entry %llu  internal-error %llu  other %llu\n",
		(unsigned long long)atomic_load(&e->io),
		(unsigned long long)atomic_load(&e->mmio),
		(unsigned long long)atomic_load(&e->hypercalls),
		(unsigned long long)atomic_load(&e->intr),
		(unsigned long long)atomic_load(&e->hlt),
		(unsigned long long)atomic_load(&e->shutdown),
		(unsigned long long)atomic_load(&e->fail_entry),
		(unsigned long long)atomic_load(&e->internal_error),
		(unsigned long long)atomic_load(&e->other));
	if (kvm->blk) {
		struct virtio_blk_stats d;

		virtio_blk__stats(kvm->blk, &d);
		fprintf(f, "  disk          %s%s: %llu reads (%llu KiB), %llu writes (%llu KiB), "
			"%llu flushes, %llu errors, %llu unsupported\n", virtio_blk__path(kvm->blk),
			virtio_blk__ro(kvm->blk) ? " (read-only)" : "",
			(unsigned long long)d.reads, (unsigned long long)(d.bytes_read >> 10),
			(unsigned long long)d.writes, (unsigned long long)(d.bytes_written >> 10),
			(unsigned long long)d.flushes, (unsigned long long)d.errors,
			(unsigned long long)d.unsupported);
	}
	fprintf(f, "  %-5s %14s %9s %14s %16s %16s\n", "vcpu", "progress", "reports",
		"rate (/s)", "max gap (ms)", "guest stall (ms)");
	for (i = 0; i < kvm->nr_cpus; i++) {
		struct progress_vcpu p;
		double rate = stats__vcpu(kvm, i, &p);

		fprintf(f, "  %-5u %14llu %9llu %14.0f %16.2f %16.2f\n", i,
			(unsigned long long)p.counter, (unsigned long long)p.reports, rate,
			(double)p.max_gap_ns / 1e6, stats__felt_ms(kvm, &p));
	}
}
