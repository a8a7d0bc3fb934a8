/*
 * log.c - VMM messages: to stderr, prefixed "zonevm: ", and a rate limit
 * for the ones a guest can trigger (STYLE rule 2: a guest must not be able
 * to flood the host's logs).
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#define LOG_GUEST_BUDGET 20

static void vm_vlog(const char *prefix, const char *suffix, const char *fmt, va_list ap)
{
	fprintf(stderr, "zonevm: %s", prefix);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "%s\n", suffix);
}

void vm_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vm_vlog("", "", fmt, ap);
	va_end(ap);
}

void vm_log_guest(struct vm *vm, const char *fmt, ...)
{
	va_list ap;
	uint64_t n = __atomic_fetch_add(&vm->log_budget, 1, __ATOMIC_RELAXED);

	if (n > LOG_GUEST_BUDGET)
		return;
	va_start(ap, fmt);
	vm_vlog("guest: ", n == LOG_GUEST_BUDGET ? " (further guest messages suppressed)" : "", fmt,
	        ap);
	va_end(ap);
}

const char *vm_fmt_size(uint64_t b, char *buf, size_t len)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	double v = (double)b;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu bytes", (unsigned long long)b);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%llu %s", (unsigned long long)v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}
