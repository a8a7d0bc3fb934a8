/*
 * util.c - small parsers and message helpers shared by the subcommands.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("zonevm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_parse_size(const char *s, uint64_t *out)
{
	const char *p = s;
	uint64_t whole = 0, mult = 1;
	double frac = 0.0, scale = 0.1;
	int digits = 0;

	if (!s)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++, digits++) {
		if (whole > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (*p == '.') {
		p++;
		for (; *p >= '0' && *p <= '9'; p++, digits++, scale /= 10)
			frac += (*p - '0') * scale;
	}
	if (!digits)
		return -EINVAL;
	switch (*p) {
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		p++;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		p++;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		p++;
		break;
	case 't':
	case 'T':
		mult = 1ULL << 40;
		p++;
		break;
	default:
		break;
	}
	if (mult > 1 && (!strcasecmp(p, "ib") || !strcasecmp(p, "b")))
		p += strlen(p);
	else if (mult == 1 && !strcasecmp(p, "b"))
		p++;
	if (*p)
		return -EINVAL;
	if (whole > UINT64_MAX / mult)
		return -ERANGE;
	double f = frac * (double)mult;
	if ((double)(UINT64_MAX - whole * mult) < f)
		return -ERANGE;
	*out = whole * mult + (uint64_t)llround(f);
	return 0;
}

int cli_open_disk(const char *path, bool read_only, bool *writeback)
{
	int flags = (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	int fd = open(path, flags | (*writeback ? 0 : O_DIRECT));

	if (fd < 0 && errno == EINVAL && !*writeback) {
		fprintf(stderr,
		        "zonevm: disk \"%s\": its file system has no direct I/O; using the "
		        "host page cache (cache=writeback)\n",
		        path);
		*writeback = true;
		fd = open(path, flags);
	}
	return fd;
}
