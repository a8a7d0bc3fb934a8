/*
 * pm.c - the ACPI hardware-reduced sleep and reset registers.
 *
 * The FADT points SLEEP_CONTROL_REG at port base+0, SLEEP_STATUS_REG at
 * base+1 and RESET_REG at base+0.  The guest powers off by writing
 * SLP_TYP=5 (the value of \_S5 in the DSDT) with SLP_EN, and resets by
 * writing the FADT's RESET_VALUE.  This file only decodes those writes and
 * reports them; the VMM decides what a power-off or reset means.
 */
#include <string.h>

#include "devices.h"

#define PM_SLP_EN     0x20
#define PM_SLP_TYP(v) (((v) >> 2) & 0x7)
#define PM_SLP_TYP_S5 5
#define PM_WAK_STS    0x80

void pm_init(struct pm *p, uint8_t reset_value, void (*event)(void *, enum pm_event), void *ctx)
{
	memset(p, 0, sizeof(*p));
	p->reset_value = reset_value;
	p->event = event;
	p->ctx = ctx;
}

static uint64_t pm_read(void *ctx, uint64_t off, unsigned len)
{
	(void)ctx;
	(void)len;
	return off == 1 ? PM_WAK_STS : 0;
}

static void pm_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	struct pm *p = ctx;
	uint8_t v = (uint8_t)val;

	(void)len;
	if (off != 0)
		return; /* status register: write-one-to-clear, nothing to clear */
	if (v == p->reset_value)
		p->event(p->ctx, PM_EVENT_RESET);
	else if ((v & PM_SLP_EN) && PM_SLP_TYP(v) == PM_SLP_TYP_S5)
		p->event(p->ctx, PM_EVENT_POWEROFF);
	/* Other sleep states are not offered in the DSDT: ignore. */
}

const struct bus_ops pm_ops = {
    .read = pm_read,
    .write = pm_write,
};
