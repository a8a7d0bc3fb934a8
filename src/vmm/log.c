/*
 * log.c - VMM messages: to stderr, prefixed "zonevm: ", and a rate limit
 * for the ones a guest can trigger (STYLE rule 2: a guest must not be able
 * to flood the host's logs).
 */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#define LOG_GUEST_BUDGET 20

void vm_log(const char *fmt, ...)
{
	va_list ap;

	fputs("zonevm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void vm_log_guest(struct vm *vm, const char *fmt, ...)
{
	va_list ap;
	uint64_t n = __atomic_fetch_add(&vm->log_budget, 1, __ATOMIC_RELAXED);

	if (n > LOG_GUEST_BUDGET)
		return;
	fputs("zonevm: guest: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (n == LOG_GUEST_BUDGET)
		fputs(" (further guest messages suppressed)", stderr);
	fputc('\n', stderr);
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
