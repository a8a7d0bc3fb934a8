/*
 * memdisk.h - a virtio-blk backend on a block of host memory, for the
 * fuzz target of the request parser and the blk-path benchmark: every
 * operation is carried out at submit time (memcpy, memset) and handed back
 * by the next reap, so a fuzz iteration or a benchmark loop needs no
 * kernel I/O.  It checks every range blk.c gives it against the disk size
 * and aborts if one is outside: for the fuzzer that is the oracle that the
 * parser's bounds checks hold.
 */
#ifndef ZONEVM_TESTS_MEMDISK_H
#define ZONEVM_TESTS_MEMDISK_H

#include "virtio/virtio.h"

/* A disk of size bytes (multiple of 512), depth ios in flight per queue. */
struct vblk_backend *memdisk_new(uint64_t size, unsigned nr_queues, unsigned depth);
uint8_t *memdisk_data(struct vblk_backend *be);

#endif
