/*
 * format.h - the pool's on-disk layout (private to src/pool).
 *
 * Everything the pool writes is described here, field by field; the same
 * tables, with the reasoning, are in docs/POOL-FORMAT.md.  All integers are
 * little-endian (the only host zonevm supports is x86-64, checked below), so
 * the structs are written as they are laid out in memory; every struct has a
 * static size check.  This header owns layout only: no I/O, no policy.
 *
 *   device:  | label 0 (256K) | allocatable sectors ... | label 1 (256K) |
 *   label:   | header 4K | uberblock ring: 32 slots x 4K | unused ... |
 *
 * A block pointer (64 bytes) names a block by sector, sizes, birth txg and
 * the xxh128 of the bytes stored there; indirect blocks are arrays of 256
 * block pointers, so each object (a volume, a deadlist, the directory) is a
 * Merkle tree whose root lives in its parent.  The uberblock holds the root
 * of the directory; it is the only thing ever written in place.
 */
#ifndef ZONEVM_POOL_FORMAT_H
#define ZONEVM_POOL_FORMAT_H

#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the pool format is little-endian and written as laid out in memory"
#endif

#define POOL_SECTOR_SHIFT 12
#define POOL_SECTOR       (1u << POOL_SECTOR_SHIFT) /* allocation unit */
#define POOL_LABEL_SIZE   (256u << 10)
#define POOL_UB_SLOTS     32u
#define POOL_UB_SLOT_SIZE 4096u
#define POOL_UB_RING_OFF  4096u /* ring offset inside a label */
#define POOL_MIN_SIZE     (16ull << 20)
#define POOL_VERSION      1u
#define POOL_LABEL_MAGIC  0x4c42414c4d565a5aull /* "ZZVMLABL" */
#define POOL_UB_MAGIC     0x5245425542564d5aull /* "ZMVBUBER" */
#define POOL_NAME_MAX     63
#define POOL_DS_NAME_MAX  127

#define POOL_IND_SHIFT      14 /* indirect blocks are 16 KiB ... */
#define POOL_IND_SIZE       (1u << POOL_IND_SHIFT)
#define POOL_BP_PER_IND     (POOL_IND_SIZE / 64) /* ... holding 256 pointers */
#define POOL_BP_PER_IND_SH  8
#define POOL_MAX_LEVELS     7
#define POOL_META_BLOCKSIZE (16u << 10) /* directory and deadlist leaves */

/* bp.comp */
enum pool_comp { POOL_COMP_OFF = 0, POOL_COMP_LZ4 = 1, POOL_COMP_ZSTD = 2, POOL_COMP_MAX };

/* bp.type: what the block holds */
enum pool_bp_type {
	POOL_BT_NONE = 0,
	POOL_BT_VOLDATA = 1,  /* guest bytes of a volume */
	POOL_BT_INDIRECT = 2, /* 256 block pointers */
	POOL_BT_DIR = 3,      /* dataset directory records */
	POOL_BT_DEADLIST = 4, /* block pointers killed by a dataset */
};

/*
 * Block pointer, 64 bytes.  addr == 0 is a hole (sector 0 is inside label 0,
 * so no block can live there); a hole keeps lsize, level and its birth, the
 * txg in which the range became a hole (0 = never written).
 *
 *  off size field
 *   0   8   addr     first sector of the block (byte offset / 4096); 0 = hole
 *   8   4   psize    bytes stored on disk (after compression)
 *  12   4   lsize    logical bytes (the block size of its object, or 16K)
 *  16   1   comp     enum pool_comp of the stored bytes
 *  17   1   type     enum pool_bp_type
 *  18   1   level    0 = leaf, n = indirect n levels above the leaves
 *  19   1   flags    reserved, 0
 *  20   4   pad      0
 *  24   8   birth    txg that wrote this pointer (holes too)
 *  32   8   fill     non-hole leaves below (1 for a written leaf)
 *  40  16   cksum    xxh128 (low64, high64) of the psize stored bytes
 *  56   8   reserved 0
 */
struct pool_bp {
	uint64_t addr;
	uint32_t psize;
	uint32_t lsize;
	uint8_t comp;
	uint8_t type;
	uint8_t level;
	uint8_t flags;
	uint32_t pad;
	uint64_t birth;
	uint64_t fill;
	uint64_t cksum[2];
	uint64_t reserved;
};
_Static_assert(sizeof(struct pool_bp) == 64, "block pointer is 64 bytes");

/*
 * Object descriptor, 96 bytes: the root of one tree.  A tree of nlevels
 * levels has its root pointer at level nlevels-1; leaves hold blocksize
 * bytes; size is the object's logical length in bytes.
 *
 *  off size field
 *   0  64   root       block pointer of the top block (hole when empty)
 *  64   8   size       logical bytes
 *  72   4   blocksize  leaf size, a power of two, 4K..128K
 *  76   1   nlevels    1..POOL_MAX_LEVELS
 *  77   1   type       enum pool_bp_type of the leaves
 *  78   1   comp       compression of new leaves
 *  79  17   reserved   0
 */
struct pool_objdesc {
	struct pool_bp root;
	uint64_t size;
	uint32_t blocksize;
	uint8_t nlevels;
	uint8_t type;
	uint8_t comp;
	uint8_t reserved[17];
};
_Static_assert(sizeof(struct pool_objdesc) == 96, "object descriptor is 96 bytes");

/*
 * Label header, first 4 KiB of each label, written once at create.
 *
 *  off size field
 *   0   8   magic      POOL_LABEL_MAGIC
 *   8   4   version    POOL_VERSION
 *  12   4   label      0 (front) or 1 (back)
 *  16   8   guid       pool guid (random)
 *  24   8   size       device bytes covered by the pool
 *  32   8   created    unix seconds
 *  40  64   name       NUL-terminated pool name
 * 104 136   reserved   0
 * 240  16   cksum      xxh128 of bytes 0..239
 */
struct pool_label {
	uint64_t magic;
	uint32_t version;
	uint32_t label;
	uint64_t guid;
	uint64_t size;
	uint64_t created;
	char name[64];
	uint8_t reserved[136];
	uint64_t cksum[2];
};
_Static_assert(sizeof(struct pool_label) == 256, "label header is 256 bytes");

/*
 * Uberblock, one 4 KiB ring slot (slot = txg % 32) in each label; only the
 * first 256 bytes are used, the rest is zero.
 *
 *  off size field
 *   0   8   magic      POOL_UB_MAGIC
 *   8   4   version    POOL_VERSION
 *  12   4   pad        0
 *  16   8   txg        transaction group this uberblock commits
 *  24   8   guid       pool guid (must match the label)
 *  32   8   time       unix seconds of the commit
 *  40  96   dir        descriptor of the dataset directory object
 * 136   8   next_id    next dataset id to hand out
 * 144   8   zil_addr   first sector of the intent log slot of txg+1, 0 = none
 * 152  88   reserved   0
 * 240  16   cksum      xxh128 of bytes 0..239
 */
struct pool_ub {
	uint64_t magic;
	uint32_t version;
	uint32_t pad;
	uint64_t txg;
	uint64_t guid;
	uint64_t time;
	struct pool_objdesc dir;
	uint64_t next_id;
	uint64_t zil_addr;
	/* the last completed scrub, carried by every later uberblock (0: never) */
	uint64_t scrub_txg;    /* the txg whose trees it verified */
	uint64_t scrub_time;   /* unix seconds when it ended */
	uint64_t scrub_blocks; /* blocks it verified */
	uint64_t scrub_errors; /* damaged blocks it found */
	uint8_t reserved[56];
	uint64_t cksum[2];
};
_Static_assert(sizeof(struct pool_ub) == 256, "uberblock is 256 bytes");

/* dataset record flags */
#define POOL_DSF_RECV    0x1 /* hidden receive temporary */
#define POOL_DSF_DESTROY 0x2 /* reserved: being destroyed */

/* dataset record types */
enum pool_ds_type { POOL_DS_FREE = 0, POOL_DS_VOLUME = 1, POOL_DS_SNAPSHOT = 2 };

/*
 * Dataset record, 512 bytes; the directory object is an array of them,
 * record i at byte i*512 (id = i + 1; a free slot has type 0).
 *
 *  off size field
 *   0   8   id            this record's id (index + 1)
 *   8   8   guid          random, kept by send/receive
 *  16   8   head_id       snapshot: its volume; volume: 0
 *  24   8   origin_id     clone: the snapshot it was cloned from; else 0
 *  32   8   prev_snap_id  newest snapshot older than this dataset; 0 = none
 *  40   8   prev_snap_txg creation_txg of prev_snap (origin for a clone)
 *  48   8   creation_txg  last txg whose blocks this dataset may hold
 *  56   8   creation_time unix seconds
 *  64   8   referenced    bytes allocated to blocks reachable from root
 *  72   8   ref_logical   logical bytes of those blocks
 *  80   8   written       referenced bytes born after prev_snap_txg
 *  88   8   used          volume: bytes charged to it and its snapshots
 *  96   8   used_logical  logical bytes of the same
 * 104   4   num_clones    clones whose origin is this snapshot
 * 108   1   type          enum pool_ds_type
 * 109   1   flags         POOL_DSF_*
 * 110   2   pad
 * 112  96   obj           the volume's block tree (size = volume size)
 * 208  96   deadlist      array of killed block pointers (64 bytes each)
 * 304   8   recv_offset   receive temporary: bytes of stream applied
 * 312   8   recv_toguid   receive temporary: guid of the snapshot sent
 * 320   8   recv_fromguid receive temporary: incremental origin guid or 0
 * 328  56   reserved
 * 384 128   name          volume or snapshot component, NUL-terminated
 */
struct pool_dsrec {
	uint64_t id;
	uint64_t guid;
	uint64_t head_id;
	uint64_t origin_id;
	uint64_t prev_snap_id;
	uint64_t prev_snap_txg;
	uint64_t creation_txg;
	uint64_t creation_time;
	uint64_t referenced;
	uint64_t ref_logical;
	uint64_t written;
	uint64_t used;
	uint64_t used_logical;
	uint32_t num_clones;
	uint8_t type;
	uint8_t flags;
	uint16_t pad;
	struct pool_objdesc obj;
	struct pool_objdesc deadlist;
	uint64_t recv_offset;
	uint64_t recv_toguid;
	uint64_t recv_fromguid;
	uint8_t reserved[56];
	char name[128];
};
_Static_assert(sizeof(struct pool_dsrec) == 512, "dataset record is 512 bytes");

/*
 * Intent log block: a 256 KiB slot, of which the header and `used` bytes of
 * records are written (rounded up to a sector).  Blocks form a chain from
 * uberblock.zil_addr; each names the slot of the next, allocated before it
 * was written.  A block is valid only with the magic, the pool guid, the
 * txg of the uberblock that started the chain, the expected sequence
 * number and its own xxh128, so a stale or torn block ends the chain.
 *
 *  off size field
 *   0   8   magic     POOL_ZIL_MAGIC
 *   8   8   guid      pool guid
 *  16   8   txg       the committed txg this log follows
 *  24   8   seq       0, 1, 2 ... along the chain
 *  32   8   next      first sector of the next block's slot
 *  40   4   used      bytes of records after the header
 *  44   4   pad       0
 *  48  16   cksum     xxh128 of header (cksum zeroed) and the records
 *
 * A record: ds_id u64, blkid u64, len u32 (0 = the block is a hole),
 * pad u32, then len bytes (the whole block).
 */
#define POOL_ZIL_MAGIC     0x31304c495a4d565aull /* "ZVMZIL01" */
#define POOL_ZIL_SLOT      (256u << 10)
#define POOL_ZIL_SLOT_SECS (POOL_ZIL_SLOT / POOL_SECTOR)

struct pool_zil_hdr {
	uint64_t magic;
	uint64_t guid;
	uint64_t txg;
	uint64_t seq;
	uint64_t next;
	uint32_t used;
	uint32_t pad;
	uint64_t cksum[2];
};
_Static_assert(sizeof(struct pool_zil_hdr) == 64, "intent log header is 64 bytes");

struct pool_zil_rec {
	uint64_t ds_id;
	uint64_t blkid;
	uint32_t len;
	uint32_t pad;
};
_Static_assert(sizeof(struct pool_zil_rec) == 24, "intent log record header is 24 bytes");

#endif
