/*
 * pool_bench.c - figures for the pool (bench/pool), printed as ratios
 * measured in one run; no assertions.  See docs/PERFORMANCE.md.
 *
 *   clone      clone time of a volume holding SMALL vs BIG bytes of data
 *   write/read sequential (1 MiB) and random 4 KiB I/O through the library
 *              vs the same I/O on a raw file in the same directory (writes
 *              end with pool_sync / fdatasync; reads: ARC-warm vs a raw
 *              file after POSIX_FADV_DONTNEED)
 *   send       incremental send of 1% changed blocks vs a full send: bytes
 *              and time
 *   send|recv  a full send piped into a receive on a second pool vs a
 *              plain read+write copy of the same bytes (both sources read
 *              cold: the pool reopened and dropped from the page cache, the
 *              copy's file dropped; both ends made durable)
 *
 * write/read and send|recv are measured in ROUNDS pairs (default 5, each
 * pair in alternating order) and printed as the median ratio and its range.
 *   flush      a 4 KiB write made durable by vol_flush (intent log) vs by
 *              a txg commit, in a volume holding 64 MiB
 *
 * usage: pool-bench [--dir DIR] [--small SIZE] [--big SIZE] [--io SIZE] [--rounds N]
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pool/pool.h"

static const char *dir = "/tmp";
static char path1[256], path2[256], rawpath[256];

/* Figures that compare two measurements take ROUNDS pairs, each pair in
 * alternating order, and print the median ratio and the range: on a loaded
 * machine one pair can be off by a factor of two either way. */
#define MAX_ROUNDS 15
static int rounds = 5;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double s[MAX_ROUNDS];

	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* "0.82 (0.75-0.90, 5 rounds)": the median ratio and its range. */
static void spread(char *buf, size_t len, const double *v, int n)
{
	double lo = v[0], hi = v[0];

	for (int i = 1; i < n; i++) {
		lo = v[i] < lo ? v[i] : lo;
		hi = v[i] > hi ? v[i] : hi;
	}
	snprintf(buf, len, "%.2f (%.2f-%.2f, %d rounds)", median(v, n), lo, hi, n);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(struct pool *p, const char *what, int err)
{
	fprintf(stderr, "pool-bench: %s: %s\n", what,
	        p && *pool_errmsg(p) ? pool_errmsg(p) : strerror(-err));
	exit(1);
}

#define CHECK(p, expr)                                                                             \
	do {                                                                                       \
		int e_ = (expr);                                                                   \
		if (e_)                                                                            \
			die(p, #expr, e_);                                                         \
	} while (0)

static struct pool *fresh_pool(const char *path, uint64_t size)
{
	struct pool *p;
	char err[POOL_ERRMSG_MAX];

	unlink(path);
	if (pool_create(path, "bench", size, err, sizeof(err)) ||
	    pool_open(path, 0, &p, err, sizeof(err))) {
		fprintf(stderr, "pool-bench: %s\n", err);
		exit(1);
	}
	return p;
}

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i + 8 <= n; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(b + i, &x, 8);
	}
}

/* Write SIZE bytes of compressible, non-zero data (one stamp per 4 KiB). */
static void write_stamped(struct pool *p, struct vol *v, uint64_t size)
{
	uint8_t *b = calloc(1, 1 << 20);

	for (uint64_t off = 0; off < size; off += 1 << 20) {
		for (uint32_t i = 0; i < (1 << 20); i += 4096)
			memcpy(b + i, &(uint64_t){off + i + 1}, 8);
		CHECK(p, vol_write(v, b, 1 << 20, off));
	}
	free(b);
	CHECK(p, pool_sync(p));
}

static double clone_time(uint64_t data)
{
	struct pool *p = fresh_pool(path1, data + (data >> 2) + (512ull << 20));
	struct vol *v;

	CHECK(p, vol_create(p, "v", data, 16384, POOL_COMPRESS_LZ4));
	CHECK(p, vol_open(p, "v", &v));
	write_stamped(p, v, data);
	vol_close(v);
	CHECK(p, vol_snapshot(p, "v@s"));
	double t = now();
	CHECK(p, vol_clone(p, "v@s", "c"));
	t = now() - t;
	CHECK(p, pool_close(p));
	unlink(path1);
	return t;
}

struct io_result {
	double seqw, seqr, rndw, rndr;
};

static void io_pool(uint64_t size, struct io_result *r)
{
	struct pool *p = fresh_pool(path1, size * 3 + (256ull << 20));
	uint8_t *b = malloc(1 << 20);
	struct vol *v;
	uint64_t n4k = size / 4096 / 4, x = 1;

	CHECK(p, vol_create(p, "v", size, 16384, POOL_COMPRESS_LZ4));
	CHECK(p, vol_open(p, "v", &v));
	double t = now();
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		fill(b, 1 << 20, off);
		CHECK(p, vol_write(v, b, 1 << 20, off));
	}
	CHECK(p, pool_sync(p));
	r->seqw = (double)size / (now() - t);
	for (uint64_t off = 0; off < size; off += 1 << 20) /* warm the ARC */
		CHECK(p, vol_read(v, b, 1 << 20, off));
	t = now();
	for (uint64_t off = 0; off < size; off += 1 << 20)
		CHECK(p, vol_read(v, b, 1 << 20, off));
	r->seqr = (double)size / (now() - t);
	t = now();
	for (uint64_t i = 0; i < n4k; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		CHECK(p,
		      vol_write(v, b + (i % 64) * 4096, 4096, ((x >> 20) % (size / 4096)) * 4096));
	}
	CHECK(p, pool_sync(p));
	r->rndw = (double)(n4k * 4096) / (now() - t);
	t = now();
	for (uint64_t i = 0; i < n4k; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		CHECK(p, vol_read(v, b, 4096, ((x >> 20) % (size / 4096)) * 4096));
	}
	r->rndr = (double)(n4k * 4096) / (now() - t);
	vol_close(v);
	CHECK(p, pool_close(p));
	unlink(path1);
	free(b);
}

static void io_raw(uint64_t size, struct io_result *r)
{
	int fd = open(rawpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	uint8_t *b = malloc(1 << 20);
	uint64_t n4k = size / 4096 / 4, x = 1;

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		die(NULL, rawpath, -errno);
	double t = now();
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		fill(b, 1 << 20, off);
		if (pwrite(fd, b, 1 << 20, (off_t)off) != 1 << 20)
			die(NULL, "pwrite", -errno);
	}
	fdatasync(fd);
	r->seqw = (double)size / (now() - t);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t = now();
	for (uint64_t off = 0; off < size; off += 1 << 20)
		if (pread(fd, b, 1 << 20, (off_t)off) != 1 << 20)
			die(NULL, "pread", -errno);
	r->seqr = (double)size / (now() - t);
	t = now();
	for (uint64_t i = 0; i < n4k; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if (pwrite(fd, b + (i % 64) * 4096, 4096,
		           (off_t)(((x >> 20) % (size / 4096)) * 4096)) != 4096)
			die(NULL, "pwrite", -errno);
	}
	fdatasync(fd);
	r->rndw = (double)(n4k * 4096) / (now() - t);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	t = now();
	for (uint64_t i = 0; i < n4k; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if (pread(fd, b, 4096, (off_t)(((x >> 20) % (size / 4096)) * 4096)) != 4096)
			die(NULL, "pread", -errno);
	}
	r->rndr = (double)(n4k * 4096) / (now() - t);
	close(fd);
	unlink(rawpath);
	free(b);
}

static int tmp_fd(void)
{
	char t[300];
	snprintf(t, sizeof(t), "%s/pool-bench-streamXXXXXX", dir);
	int fd = mkstemp(t);
	if (fd < 0)
		die(NULL, "mkstemp", -errno);
	unlink(t);
	return fd;
}

struct recv_arg {
	struct pool *p;
	int fd, err;
};

static void *recv_thread(void *a)
{
	struct recv_arg *r = a;

	r->err = vol_recv(r->p, "copy", r->fd, 0);
	return NULL;
}

/*
 * Reopen the pool at PATH with nothing of it in memory: an empty ARC, and
 * its file dropped from the page cache, as the plain copy's source is.
 */
static struct pool *cold_pool(struct pool *p, const char *path)
{
	char err[POOL_ERRMSG_MAX];

	CHECK(p, pool_close(p)); /* commits and flushes: no dirty pages left */
	if (pool_open(path, 0, &p, err, sizeof(err))) {
		fprintf(stderr, "pool-bench: %s\n", err);
		exit(1);
	}
	int fd = open(path, O_RDONLY);
	if (fd < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
		die(NULL, path, -errno);
	close(fd);
	return p;
}

/* send | recv of *PP's v@b, read cold, through a pipe into a fresh pool:
 * seconds. */
static double sendrecv_time(struct pool **pp, uint64_t size)
{
	struct pool *q = fresh_pool(path2, size * 2 + (256ull << 20));
	struct pool *p = *pp = cold_pool(*pp, path1);
	double t;
	int pfd[2];
	if (pipe(pfd) < 0)
		die(NULL, "pipe", -errno);
	fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20); /* as vol send does on a pipe */
	struct recv_arg ra = {.p = q, .fd = pfd[0]};
	pthread_t th;
	t = now();
	pthread_create(&th, NULL, recv_thread, &ra);
	CHECK(p, vol_send(p, "v@b", NULL, NULL, pfd[1]));
	close(pfd[1]);
	pthread_join(th, NULL);
	CHECK(q, ra.err);
	double tsr = now() - t;
	close(pfd[0]);
	CHECK(q, pool_close(q));
	unlink(path2);
	return tsr;
}

/* A read+write copy of SIZE bytes not in the page cache: seconds. */
static double copy_time(uint64_t size, uint8_t *b)
{
	double t;
	/* the copy's source: as many bytes of the same data, not in the page cache */
	char srcpath[300];
	snprintf(srcpath, sizeof(srcpath), "%s.src", rawpath);
	int in = open(srcpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		fill(b, 1 << 20, off + 3);
		if (write(in, b, 1 << 20) != 1 << 20)
			die(NULL, "write", -errno);
	}
	fdatasync(in);
	posix_fadvise(in, 0, 0, POSIX_FADV_DONTNEED);
	int out = open(rawpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	t = now();
	for (uint64_t done = 0; done < size;) {
		ssize_t n = pread(in, b, 1 << 20, (off_t)done);
		if (n <= 0 || write(out, b, (size_t)n) != n)
			break;
		done += (uint64_t)n;
	}
	fdatasync(out);
	double tcp = now() - t;
	close(in);
	close(out);
	unlink(rawpath);
	unlink(srcpath);
	return tcp;
}

/* One round: send | recv of P's v@b into a fresh pool, and a plain copy of
 * as many bytes, in the order COPY_FIRST says. */
static void sendrecv_round(struct pool **pp, uint64_t size, uint8_t *b, int copy_first,
                           double *tsr_out, double *tcp_out)
{
	for (int k = 0; k < 2; k++) {
		if (k == copy_first)
			*tsr_out = sendrecv_time(pp, size);
		else
			*tcp_out = copy_time(size, b);
	}
}
static void send_figures(uint64_t size)
{
	struct pool *p = fresh_pool(path1, size * 3 + (256ull << 20));
	uint8_t *b = malloc(1 << 20);
	uint64_t nblk = size / 16384, x = 7;
	struct vol *v;

	CHECK(p, vol_create(p, "v", size, 16384, POOL_COMPRESS_LZ4));
	CHECK(p, vol_open(p, "v", &v));
	for (uint64_t off = 0; off < size; off += 1 << 20) {
		fill(b, 1 << 20, off + 3);
		CHECK(p, vol_write(v, b, 1 << 20, off));
	}
	CHECK(p, vol_snapshot(p, "v@a"));
	for (uint64_t i = 0; i < nblk / 100; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		CHECK(p, vol_write(v, b + (i % 60) * 16384, 16384, ((x >> 20) % nblk) * 16384));
	}
	vol_close(v);
	CHECK(p, vol_snapshot(p, "v@b"));
	int fd = tmp_fd();
	double t = now();
	CHECK(p, vol_send(p, "v@b", NULL, NULL, fd));
	double tfull = now() - t;
	off_t full = lseek(fd, 0, SEEK_CUR);
	close(fd);
	fd = tmp_fd();
	t = now();
	CHECK(p, vol_send(p, "v@b", "@a", NULL, fd));
	double tinc = now() - t;
	off_t inc = lseek(fd, 0, SEEK_CUR);
	close(fd);
	printf("incremental send (1%% of blocks changed) vs full: size %.4f (%lld / %lld bytes), "
	       "time %.4f (%.3f / %.3f s)\n",
	       (double)inc / (double)full, (long long)inc, (long long)full, tinc / tfull, tinc,
	       tfull);

	/* send | recv through a pipe, against a read+write copy of as many
	 * bytes: ROUNDS pairs in alternating order, the median ratio */
	double r[MAX_ROUNDS], tsr[MAX_ROUNDS], tcp[MAX_ROUNDS];
	for (int i = 0; i < rounds; i++) {
		sendrecv_round(&p, size, b, i & 1, &tsr[i], &tcp[i]);
		r[i] = tcp[i] / tsr[i];
	}
	char sp[64];
	spread(sp, sizeof(sp), r, rounds);
	printf("send | recv vs plain copy of %llu MiB: throughput %s (medians %.3f s vs %.3f s)\n",
	       (unsigned long long)(size >> 20), sp, median(tsr, rounds), median(tcp, rounds));
	CHECK(p, pool_close(p));
	unlink(path1);
	unlink(path2);
	free(b);
}

static void flush_figures(void)
{
	struct pool *p = fresh_pool(path1, 512ull << 20);
	uint8_t b[4096];
	struct vol *v;
	const int n = 200;
	uint64_t x = 11;

	CHECK(p, vol_create(p, "v", 64ull << 20, 16384, POOL_COMPRESS_LZ4));
	CHECK(p, vol_open(p, "v", &v));
	write_stamped(p, v, 64ull << 20);
	double tl = now();
	for (int i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		fill(b, sizeof(b), x);
		CHECK(p, vol_write(v, b, sizeof(b), ((x >> 20) % 16384) * 4096));
		CHECK(p, vol_flush(v));
	}
	tl = (now() - tl) / n;
	double tc = now();
	for (int i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		fill(b, sizeof(b), x);
		CHECK(p, vol_write(v, b, sizeof(b), ((x >> 20) % 16384) * 4096));
		CHECK(p, pool_sync(p));
	}
	tc = (now() - tc) / n;
	printf("4 KiB write + flush, intent log vs txg commit: %.2f (%.3f ms vs %.3f ms)\n",
	       tl / tc, tl * 1e3, tc * 1e3);
	vol_close(v);
	CHECK(p, pool_close(p));
	unlink(path1);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	int sh = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
	return (uint64_t)(v * (double)(1ull << sh));
}

int main(int argc, char **argv)
{
	uint64_t small = 64ull << 20, big = 4ull << 30, io = 128ull << 20;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--small"))
			small = parse_size(argv[i + 1]);
		else if (!strcmp(argv[i], "--big"))
			big = parse_size(argv[i + 1]);
		else if (!strcmp(argv[i], "--io"))
			io = parse_size(argv[i + 1]);
		else if (!strcmp(argv[i], "--rounds"))
			rounds = atoi(argv[i + 1]) < 1            ? 1
			         : atoi(argv[i + 1]) > MAX_ROUNDS ? MAX_ROUNDS
			                                          : atoi(argv[i + 1]);
	}
	snprintf(path1, sizeof(path1), "%s/pool-bench-1.img", dir);
	snprintf(path2, sizeof(path2), "%s/pool-bench-2.img", dir);
	snprintf(rawpath, sizeof(rawpath), "%s/pool-bench-raw", dir);

	double ts = clone_time(small), tb = clone_time(big);
	printf("clone of %llu MiB vs %llu MiB of data: %.2f (%.2f ms vs %.2f ms)\n",
	       (unsigned long long)(big >> 20), (unsigned long long)(small >> 20), tb / ts,
	       tb * 1e3, ts * 1e3);
	struct io_result rp[MAX_ROUNDS], rr[MAX_ROUNDS];
	double q[4][MAX_ROUNDS], mp[4][MAX_ROUNDS], mr[4][MAX_ROUNDS];
	for (int i = 0; i < rounds; i++) {
		if (i & 1) {
			io_raw(io, &rr[i]);
			io_pool(io, &rp[i]);
		} else {
			io_pool(io, &rp[i]);
			io_raw(io, &rr[i]);
		}
		double a[4] = {rp[i].seqw, rp[i].seqr, rp[i].rndw, rp[i].rndr};
		double c[4] = {rr[i].seqw, rr[i].seqr, rr[i].rndw, rr[i].rndr};
		for (int k = 0; k < 4; k++) {
			q[k][i] = a[k] / c[k];
			mp[k][i] = a[k] / 1048576;
			mr[k][i] = c[k] / 1048576;
		}
	}
	static const char *what[4] = {"seq write", "seq read (ARC warm vs cold raw)",
	                              "4K random write", "4K random read"};
	printf("library vs raw file, %llu MiB:\n", (unsigned long long)(io >> 20));
	for (int k = 0; k < 4; k++) {
		char sp[64];
		spread(sp, sizeof(sp), q[k], rounds);
		printf("  %s %s (median MiB/s %.0f vs %.0f)\n", what[k], sp, median(mp[k], rounds),
		       median(mr[k], rounds));
	}
	send_figures(io);
	flush_figures();
	return 0;
}
