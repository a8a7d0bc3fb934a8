/*
 * fuzz_pool_open.c - libFuzzer target: pool open on a hostile image.
 *
 * The input is the first bytes of a 16 MiB pool device (label 0, its
 * uberblock ring and the first data sectors; the rest is zero, so label 1
 * never verifies).  Checksums are not compared in fuzzing builds, so the
 * input reaches the label, uberblock, directory, dataset record and block
 * pointer checks.  An image that opens is listed, read, scrubbed and then
 * abandoned (nothing is written).  The seed corpus
 * (tests/fuzz/corpus/fuzz_pool_open) is the start of a real small pool.
 */
#include "fuzz_pool_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct pool *p;
	struct vol *v;
	uint8_t buf[65536];

	(void)argc;
	(void)argv;
	fz_path_init("open");
	unlink(fz_path);
	if (pool_create(fz_path, "fz", FZ_POOL_SIZE, NULL, 0) || pool_open(fz_path, 0, &p, NULL, 0))
		abort();
	memset(buf, 'z', sizeof(buf));
	if (vol_create(p, "v", 1 << 20, 4096, POOL_COMPRESS_LZ4) || vol_open(p, "v", &v) ||
	    vol_write(v, buf, sizeof(buf), 8192) || vol_snapshot(p, "v@s") ||
	    vol_clone(p, "v@s", "c"))
		abort();
	vol_close(v);
	if (pool_close(p))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pool *p;
	size_t n = size < (1u << 20) ? size : (1u << 20);

	fz_write_image(data, n);
	if (pool_open(fz_path, POOL_OPEN_RDONLY, &p, NULL, 0) == 0) {
		fz_exercise(p);
		pool_abandon(p);
	}
	return 0;
}
