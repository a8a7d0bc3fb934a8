/*
 * fuzz_pool_stream.c - libFuzzer target: `vol recv` of a hostile stream.
 *
 * Each input is received into a pool restored from a template that holds
 * a volume "base" with a snapshot "base@s" (so incremental streams can
 * apply) - as a new volume, or onto "base", resumable or not, chosen by
 * the first byte.  Record checksums are not compared in fuzzing builds, so
 * the input reaches the record parser, the BEGIN checks, the offset rules
 * and the apply path.  The pool is then listed, read and scrubbed.
 */
#include <sys/mman.h>

#include "fuzz_pool_common.h"

static uint8_t *tmpl;
static uint32_t *pages; /* non-zero 4 KiB pages of the template */
static size_t npages;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pool *p;
	struct vol *v;
	uint8_t buf[32768];

	(void)argc;
	(void)argv;
	fz_path_init("stream");
	unlink(fz_path);
	if (pool_create(fz_path, "fz", FZ_POOL_SIZE, NULL, 0) || pool_open(fz_path, 0, &p, NULL, 0))
		abort();
	memset(buf, 'b', sizeof(buf));
	if (vol_create(p, "base", 1 << 20, 16384, POOL_COMPRESS_LZ4) || vol_open(p, "base", &v) ||
	    vol_write(v, buf, sizeof(buf), 0) || vol_snapshot(p, "base@s"))
		abort();
	vol_close(v);
	if (pool_close(p))
		abort();
	tmpl = fz_read_image();
	pages = malloc(FZ_POOL_SIZE / 4096 * sizeof(*pages));
	for (uint32_t i = 0; pages && i < FZ_POOL_SIZE / 4096; i++)
		for (uint32_t k = 0; k < 4096; k++)
			if (tmpl[(size_t)i * 4096 + k]) {
				pages[npages++] = i;
				break;
			}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pool *p;
	int fd;

	if (size < 1)
		return 0;
	/* restore the template: truncate, then only its non-zero pages */
	int img = open(fz_path, O_RDWR | O_TRUNC);
	if (img < 0 || ftruncate(img, FZ_POOL_SIZE) < 0)
		abort();
	for (size_t i = 0; i < npages; i++)
		if (pwrite(img, tmpl + (size_t)pages[i] * 4096, 4096, (off_t)pages[i] * 4096) !=
		    4096)
			abort();
	close(img);
	fd = memfd_create("stream", 0);
	if (fd < 0 || write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	lseek(fd, 0, SEEK_SET);
	if (pool_open(fz_path, 0, &p, NULL, 0))
		abort();
	(void)vol_recv(p, (data[0] & 1) ? "base" : "new", fd, (data[0] >> 1) & 1);
	fz_exercise(p);
	(void)pool_close(p);
	close(fd);
	return 0;
}
