/* The guests' runtime (runtime.h). */
#include <stdarg.h>

#include "args.h"
#include "fmt.h"
#include "runtime.h"

#define RT_MSG_MAX	256	/* kvm-run keeps 255 bytes of a KM_HC_FAIL text */

void *memset(void *s, int c, size_t n)
{
	void *d = s;

	/* rep stosb: fast on every CPU with ERMS, and no loop for gcc to turn back into memset. */
	asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return s;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	asm volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	/* Overlapping with dst above src: copy backwards, then restore DF=0. */
	d += n - 1;
	s += n - 1;
	asm volatile("std\n\trep movsb\n\tcld" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	size_t i;

	for (i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

/* "name[vcpu]: " then the formatted text. */
static size_t rt_vformat(const struct rt_cpu *c, char *buf, size_t size,
			 const char *fmt, va_list ap)
{
	int n = 0, m;

	if (c)
		n = fmt_snprintf(buf, size, "%s[%u]: ", c->name ? c->name : "guest", c->vcpu);
	if ((size_t)n >= size)
		n = (int)size - 1;
	m = fmt_vsnprintf(buf + n, size - (size_t)n, fmt, ap);
	if ((size_t)m >= size - (size_t)n)
		m = (int)(size - (size_t)n) - 1;
	return (size_t)n + (size_t)m;
}

void rt_printf(struct rt_cpu *c, const char *fmt, ...)
{
	char buf[RT_MSG_MAX];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	len = rt_vformat(c, buf, sizeof(buf), fmt, ap);
	va_end(ap);
	rt_request(c, km_console(buf, len));
}

void rt_panic(const struct rt_cpu *c, const char *fmt, ...)
{
	char buf[RT_MSG_MAX];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	len = rt_vformat(c, buf, sizeof(buf), fmt, ap);
	va_end(ap);
	km_fail(buf, len);
}

void rt_done(void)
{
	km_done(0);
}

/* Copies a span into buf as a C string, truncated to fit. */
static const char *rt_span(char *buf, size_t size, const char *s, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(buf, s, len);
	buf[len] = 0;
	return buf;
}

void rt_init(struct rt_cpu *c, const struct km_boot_info *bi, unsigned int vcpu,
	     const char *name, const char *const *known)
{
	/*
	 * Static: a compound literal in the if below would live only until
	 * the end of that if statement, and args_unknown read it dead (it
	 * did, once the stack layout changed).
	 */
	static const char *const no_keys[] = { NULL };
	char tmp[64], keys[128];
	const char *item;
	size_t len, i, n;

	memset(c, 0, sizeof(*c));
	c->bi = bi;
	c->name = name;
	c->vcpu = vcpu;
	if (bi->magic != KM_BOOT_MAGIC || bi->version != KM_BOOT_VERSION)
		rt_panic(c, "boot info has magic 0x%x version %u, want 0x%x version %u",
			 bi->magic, bi->version, KM_BOOT_MAGIC, KM_BOOT_VERSION);
	if (bi->nr_vcpus == 0 || bi->nr_vcpus > KM_MAX_VCPUS || vcpu >= bi->nr_vcpus)
		rt_panic(c, "vCPU %u of %u: outside 1..%u vCPUs", vcpu, bi->nr_vcpus,
			 KM_MAX_VCPUS);
	if (bi->tsc_khz == 0 || bi->tsc_khz > 100000000ULL)
		rt_panic(c, "implausible TSC rate %llu kHz", bi->tsc_khz);
	for (i = 0; i < sizeof(bi->args) && bi->args[i]; i++)
		;
	if (i == sizeof(bi->args))
		rt_panic(c, "guest arguments are not NUL-terminated");
	c->nr_vcpus = bi->nr_vcpus;
	c->tsc_khz = bi->tsc_khz;
	c->report_ticks = c->tsc_khz * RT_REPORT_MS;
	c->last = c->next_report = km_rdtsc();	/* the first tick reports */
	if (!known)
		known = no_keys;
	if (args_unknown(bi->args, known, &item, &len)) {
		n = 0;
		for (i = 0; known[i] && n < sizeof(keys); i++)
			n += (size_t)fmt_snprintf(keys + n, sizeof(keys) - n, "%s%s",
						  i ? ", " : "", known[i]);
		rt_panic(c, "argument '%s' is not key=value with a known key (%s)",
			 rt_span(tmp, sizeof(tmp), item, len), i ? keys : "none");
	}
}

void rt_report(struct rt_cpu *c, uint64_t now)
{
	unsigned int req = km_progress(c->counter, c->max_gap);

	c->max_gap = 0;
	c->next_report = now + c->report_ticks;
	rt_request(c, req);
}

void rt_tick_cb(void *c)
{
	rt_tick(c);
}

void rt_request(struct rt_cpu *c, unsigned int req)
{
	uint64_t pages, bad;

	/*
	 * kvm-run returns KM_REQ_CHECK from every hypercall until this vCPU
	 * has answered it, so a CHECK seen while checking (from the progress
	 * reports and messages of the check itself) is the same check, not a
	 * new one. What KM_HC_CHECK_RESULT returns can be a new one.
	 */
	while (req == KM_REQ_CHECK && !c->checking) {
		pages = bad = 0;
		c->checking = 1;
		if (c->check)
			c->check(c, &pages, &bad);
		req = km_hypercall(KM_HC_CHECK_RESULT, pages, bad, 0, 0);
		c->checking = 0;
	}
}

void rt_sleep_us(struct rt_cpu *c, uint64_t us)
{
	uint64_t t0 = km_rdtsc(), asked = us * c->tsc_khz / 1000, slept;
	unsigned int req = km_sleep_us(us);

	/*
	 * The sleep asked for is not a pause; what it overran by is (a
	 * sleep that a pause cut short and then prolonged shows as late).
	 */
	slept = km_rdtsc() - t0;
	c->asleep += slept < asked ? slept : asked;
	rt_request(c, req);
}

void rt_wait_until(struct rt_cpu *c, uint64_t deadline)
{
	uint64_t spin = rt_us_to_tsc(c, RT_SPIN_US), us;
	int64_t left;

	for (;;) {
		left = (int64_t)(deadline - rt_tick(c));
		if (left <= 0)
			return;
		if ((uint64_t)left > spin) {
			/* Wake half a spin early: host sleeps overshoot. */
			us = ((uint64_t)left - spin / 2) * 1000 / c->tsc_khz;
			rt_sleep_us(c, us < RT_IDLE_US ? us : RT_IDLE_US);
		} else {
			asm volatile("pause");
		}
	}
}

void rt_idle(struct rt_cpu *c)
{
	for (;;) {
		rt_sleep_us(c, RT_IDLE_US);
		rt_tick(c);
	}
}

int rt_arg_has(const struct rt_cpu *c, const char *key)
{
	const char *v;
	size_t len;

	return args_find(c->bi->args, key, &v, &len);
}

uint64_t rt_arg_u64(const struct rt_cpu *c, const char *key, uint64_t def,
		    uint64_t min, uint64_t max)
{
	char tmp[64];
	const char *v;
	size_t len;
	uint64_t x;

	if (!args_find(c->bi->args, key, &v, &len))
		return def;
	if (args_parse_u64(v, len, &x) != 0)
		rt_panic(c, "%s=%s: not a decimal number", key, rt_span(tmp, sizeof(tmp), v, len));
	if (x < min || x > max)
		rt_panic(c, "%s=%llu: outside %llu..%llu", key, (unsigned long long)x,
			 (unsigned long long)min, (unsigned long long)max);
	return x;
}

uint64_t rt_arg_size(const struct rt_cpu *c, const char *key, uint64_t def,
		     uint64_t min, uint64_t max)
{
	char tmp[64];
	const char *v;
	size_t len;
	uint64_t x;

	if (!args_find(c->bi->args, key, &v, &len))
		return def;
	if (args_parse_size(v, len, &x) != 0)
		rt_panic(c, "%s=%s: not a size (4096, 64K, 256M, 2G)", key,
			 rt_span(tmp, sizeof(tmp), v, len));
	if (x < min || x > max)
		rt_panic(c, "%s=%s: outside %llu..%llu bytes", key,
			 rt_span(tmp, sizeof(tmp), v, len), (unsigned long long)min,
			 (unsigned long long)max);
	return x;
}

unsigned int rt_arg_choice(const struct rt_cpu *c, const char *key,
			   const char *const *names, unsigned int def)
{
	char tmp[64];
	const char *v;
	size_t len;
	unsigned int i;

	if (!args_find(c->bi->args, key, &v, &len))
		return def;
	for (i = 0; names[i]; i++)
		if (args_equal(v, len, names[i]))
			return i;
	rt_panic(c, "%s=%s: unknown value", key, rt_span(tmp, sizeof(tmp), v, len));
}
