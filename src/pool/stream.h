/*
 * stream.h - the send stream format (private to src/pool; documented in
 * docs/POOL-FORMAT.md, "Send stream").
 *
 *   | BEGIN | WRITE | WRITE | FREE | WRITE | ... | END |
 *
 * Every record is a 48-byte header followed by payload_len bytes; the
 * header's cksum is the xxh128 of the header (cksum zeroed) and the
 * payload, so any flipped, truncated or spliced record is caught before it
 * is applied.  END carries the record count and a chained xxh128 of the
 * checksums of all records before it (pool_stream_chain), so a dropped or reordered record is
 * caught too.  Records after BEGIN are in increasing offset order, which
 * is what makes a receive resumable at a byte offset.
 *
 *  header: off size field
 *            0   4   magic        POOL_STREAM_MAGIC ("ZVMS")
 *            4   2   type         enum pool_rec_type
 *            6   2   flags        0
 *            8   8   offset       volume byte offset (WRITE, FREE)
 *           16   8   length       bytes covered (WRITE: == payload_len)
 *           24   4   payload_len  bytes following the header (<= 128 KiB)
 *           28   4   reserved     0
 *           32  16   cksum        xxh128 of header (cksum = 0) + payload
 */
#ifndef ZONEVM_POOL_STREAM_H
#define ZONEVM_POOL_STREAM_H

#include <stdint.h>

#define POOL_STREAM_MAGIC   0x534d565au /* "ZVMS" */
#define POOL_STREAM_VERSION 1u
#define POOL_STREAM_MAXPAY  (128u << 10)

enum pool_rec_type { POOL_REC_BEGIN = 1, POOL_REC_WRITE = 2, POOL_REC_FREE = 3, POOL_REC_END = 4 };

struct pool_rec {
	uint32_t magic;
	uint16_t type;
	uint16_t flags;
	uint64_t offset;
	uint64_t length;
	uint32_t payload_len;
	uint32_t reserved;
	uint64_t cksum[2];
};
_Static_assert(sizeof(struct pool_rec) == 48, "stream record header is 48 bytes");

/*
 * BEGIN payload, 256 bytes.
 *  off size field
 *    0   4  version        POOL_STREAM_VERSION
 *    4   4  blocksize      of the volume sent
 *    8   8  volsize        size of the snapshot sent
 *   16   8  toguid         guid of the snapshot sent
 *   24   8  fromguid       guid of the incremental origin, 0 = full stream
 *   32   8  resume_offset  records below this offset are left out
 *   40   8  creation       unix seconds of the snapshot
 *   48   1  compression    of the source (the receiver's new blocks use it)
 *   49  79  reserved       0
 *  128 128  snapname       the snapshot's name (after the @), NUL-terminated
 */
struct pool_rec_begin {
	uint32_t version;
	uint32_t blocksize;
	uint64_t volsize;
	uint64_t toguid;
	uint64_t fromguid;
	uint64_t resume_offset;
	uint64_t creation;
	uint8_t compression;
	uint8_t reserved[79];
	char snapname[128];
};
_Static_assert(sizeof(struct pool_rec_begin) == 256, "BEGIN payload is 256 bytes");

/* END payload: records before END, and xxh128 over their checksums. */
struct pool_rec_end {
	uint64_t nrecords;
	uint64_t cksum[2];
	uint64_t reserved;
};
_Static_assert(sizeof(struct pool_rec_end) == 32, "END payload is 32 bytes");

/*
 * Check a record header read from a stream (before its payload is read):
 * magic, type, sizes.  Returns 0 or -EBADMSG.
 */
int pool_stream_check_header(const struct pool_rec *h);
/* Verify the checksum of header H and its PAYLOAD. */
int pool_stream_verify(const struct pool_rec *h, const void *payload);
/* END's chain: run = xxh128(run || cksum) for each record, from run = 0. */
void pool_stream_chain(uint64_t run[2], const uint64_t cksum[2]);
/* Fill in the checksum of H and PAYLOAD. */
void pool_stream_seal(struct pool_rec *h, const void *payload);

#endif
