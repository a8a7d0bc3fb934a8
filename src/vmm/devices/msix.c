/*
 * msix.c - MSI-X for an emulated PCI function: the capability, the vector
 * table, the pending bit array, and the rule that decides whether a raised
 * vector is delivered now or left pending.
 *
 * It owns the table bytes exactly as the guest wrote them and nothing else:
 * delivery and routing go through struct msix_host (the VMM turns them into
 * KVM_SET_GSI_ROUTING entries and irqfd writes).  It never locks: the owning
 * device serialises every call.  Any offset and size a guest uses is
 * accepted; reserved bits read as zero and are not stored.
 *
 *   capability (config space, 12 bytes)      table entry (BAR, 16 bytes)
 *   +0  id 0x11 | next | message control     +0  message address low
 *   +4  table offset | BIR (bits 2:0)        +4  message address high
 *   +8  PBA offset   | BIR                   +8  message data
 *       control: 10:0 size-1, 14 mask, 15 on +12 vector control (bit 0 mask)
 *
 * A vector is deliverable when MSI-X is enabled, the function is not masked
 * and its entry is not masked.  Raising an undeliverable vector sets its PBA
 * bit; the bit is cleared and the message sent when it becomes deliverable
 * (PCI Local Bus 3.0, 6.8.3.5).  A message change is routed at once, masked
 * or not, so that an unmask never has to wait for routing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devices.h"

#define PCI_CAP_ID_MSIX   0x11
#define MSIX_CTRL_MASKBIT 1u
#define MSIX_OFF_ADDR_LO  0
#define MSIX_OFF_ADDR_HI  4
#define MSIX_OFF_DATA     8
#define MSIX_OFF_CTRL     12

static uint32_t msix_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void msix_put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int msix_init(struct msix *m, unsigned nvec, const struct msix_host *host)
{
	memset(m, 0, sizeof(*m));
	if (nvec == 0 || nvec > MSIX_MAX_VECTORS)
		return -EINVAL;
	m->table = calloc(1, MSIX_TABLE_BYTES(nvec));
	m->pba = calloc(1, MSIX_PBA_BYTES(nvec));
	if (!m->table || !m->pba) {
		msix_destroy(m);
		return -ENOMEM;
	}
	m->nvec = nvec;
	m->host = *host;
	for (unsigned v = 0; v < nvec; v++)
		m->table[v * MSIX_ENTRY_SIZE + MSIX_OFF_CTRL] = MSIX_CTRL_MASKBIT;
	return 0;
}

void msix_destroy(struct msix *m)
{
	free(m->table);
	free(m->pba);
	m->table = NULL;
	m->pba = NULL;
	m->nvec = 0;
}

void msix_cap_init(struct pci_func *f, unsigned off, unsigned next, unsigned nvec, unsigned bir,
                   uint32_t table_off, uint32_t pba_off)
{
	uint16_t ctrl = (uint16_t)((nvec - 1) & 0x7ff);

	f->cfg[off] = PCI_CAP_ID_MSIX;
	f->cfg[off + 1] = (uint8_t)next;
	f->cfg[off + 2] = (uint8_t)ctrl;
	f->cfg[off + 3] = (uint8_t)(ctrl >> 8);
	msix_put32(&f->cfg[off + 4], table_off | (bir & 7));
	msix_put32(&f->cfg[off + 8], pba_off | (bir & 7));
	/* Only enable and function mask are the guest's to change. */
	f->wmask[off + 3] = (uint8_t)((MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL) >> 8);
}

static bool msix_entry_masked(const struct msix *m, unsigned vec)
{
	return m->table[vec * MSIX_ENTRY_SIZE + MSIX_OFF_CTRL] & MSIX_CTRL_MASKBIT;
}

static bool msix_deliverable(const struct msix *m, unsigned vec)
{
	return m->enabled && !m->maskall && !msix_entry_masked(m, vec);
}

bool msix_pending(const struct msix *m, unsigned vec)
{
	return vec < m->nvec && (m->pba[vec / 64] >> (vec % 64)) & 1;
}

static void msix_fire(struct msix *m, unsigned vec)
{
	m->nr_fired++;
	if (m->host.fire)
		m->host.fire(m->host.ctx, vec);
}

void msix_raise(struct msix *m, unsigned vec)
{
	if (vec >= m->nvec)
		return;
	if (msix_deliverable(m, vec)) {
		msix_fire(m, vec);
		return;
	}
	m->nr_pended++;
	m->pba[vec / 64] |= UINT64_C(1) << (vec % 64);
}

/* Send what is pending and deliverable now; lo..hi is the vector range. */
static void msix_flush(struct msix *m, unsigned lo, unsigned hi)
{
	for (unsigned v = lo; v < hi && v < m->nvec; v++) {
		if (!msix_pending(m, v) || !msix_deliverable(m, v))
			continue;
		m->pba[v / 64] &= ~(UINT64_C(1) << (v % 64));
		msix_fire(m, v);
	}
}

void msix_set_control(struct msix *m, uint16_t ctrl)
{
	m->enabled = ctrl & MSIX_CTRL_ENABLE;
	m->maskall = ctrl & MSIX_CTRL_MASKALL;
	msix_flush(m, 0, m->nvec);
}

/* Bytes [off, off + len) of a region of size bytes as a little-endian value. */
static uint64_t msix_read_bytes(const uint8_t *p, uint64_t size, uint64_t off, unsigned len)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < len && i < 8; i++)
		if (off + i < size)
			v |= (uint64_t)p[off + i] << (8 * i);
	return v;
}

uint64_t msix_table_read(struct msix *m, uint64_t off, unsigned len)
{
	return msix_read_bytes(m->table, MSIX_TABLE_BYTES(m->nvec), off, len);
}

void msix_table_write(struct msix *m, uint64_t off, unsigned len, uint64_t val)
{
	uint64_t size = MSIX_TABLE_BYTES(m->nvec);

	if (len > 8 || off >= size)
		return;
	for (unsigned v = (unsigned)(off / MSIX_ENTRY_SIZE);
	     v < m->nvec && (uint64_t)v * MSIX_ENTRY_SIZE < off + len; v++) {
		uint8_t *e = &m->table[v * MSIX_ENTRY_SIZE];
		uint8_t old[MSIX_ENTRY_SIZE];

		memcpy(old, e, sizeof(old));
		for (unsigned i = 0; i < len; i++) {
			uint64_t b = off + i;
			if (b / MSIX_ENTRY_SIZE == v)
				e[b % MSIX_ENTRY_SIZE] = (uint8_t)(val >> (8 * i));
		}
		/* Vector control: only the mask bit exists. */
		msix_put32(&e[MSIX_OFF_CTRL], msix_get32(&e[MSIX_OFF_CTRL]) & MSIX_CTRL_MASKBIT);
		if (memcmp(old, e, MSIX_OFF_CTRL) != 0 && m->host.route)
			m->host.route(m->host.ctx, v,
			              (uint64_t)msix_get32(&e[MSIX_OFF_ADDR_HI]) << 32 |
			                  msix_get32(&e[MSIX_OFF_ADDR_LO]),
			              msix_get32(&e[MSIX_OFF_DATA]));
		if ((old[MSIX_OFF_CTRL] & MSIX_CTRL_MASKBIT) && !msix_entry_masked(m, v))
			msix_flush(m, v, v + 1);
	}
}

uint64_t msix_pba_read(struct msix *m, uint64_t off, unsigned len)
{
	uint8_t bytes[MSIX_PBA_BYTES(MSIX_MAX_VECTORS)];
	uint64_t size = MSIX_PBA_BYTES(m->nvec);

	for (uint64_t i = 0; i < size; i++)
		bytes[i] = (uint8_t)(m->pba[i / 8] >> (8 * (i % 8)));
	return msix_read_bytes(bytes, size, off, len);
}
