/*
 * test_devices.c - the emulated devices driven as a guest driver would:
 * the I/O bus, the 16550A (Linux's probe sequence, interrupts, loopback),
 * PCI config space through 0xCF8/0xCFC and ECAM, the ACPI PM registers.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/devices/devices.h"

/* ---- bus ---------------------------------------------------------------- */

static uint64_t echo_read(void *ctx, uint64_t off, unsigned len)
{
	(void)ctx;
	return off * 0x100 + len;
}

static const struct bus_ops echo_ops = {.read = echo_read};

static void test_bus(void **state)
{
	struct bus b;
	uint64_t v;
	(void)state;

	bus_init(&b, "test");
	assert_int_equal(bus_register(&b, 0x100, 0x10, &echo_ops, NULL, "a"), 0);
	assert_int_equal(bus_register(&b, 0x10, 0x10, &echo_ops, NULL, "b"), 0);
	assert_int_equal(bus_register(&b, 0x108, 0x10, &echo_ops, NULL, "c"), -EEXIST);
	assert_int_equal(bus_register(&b, 0x0, 0, &echo_ops, NULL, "d"), -EINVAL);
	assert_int_equal(bus_register(&b, UINT64_MAX, 2, &echo_ops, NULL, "e"), -EINVAL);
	assert_true(bus_read(&b, 0x104, 2, &v));
	assert_int_equal(v, 0x402);
	assert_true(bus_read(&b, 0x10, 1, &v));
	assert_int_equal(v, 1);
	/* An access that runs past the end of a range is not claimed. */
	assert_false(bus_read(&b, 0x10e, 4, &v));
	assert_int_equal(v, 0xffffffff);
	assert_false(bus_read(&b, 0x200, 8, &v));
	assert_int_equal(v, UINT64_MAX);
	assert_false(bus_write(&b, 0x200, 1, 0)); /* no write op: dropped */
	assert_int_equal(b.unhandled, 3);
	assert_int_equal(bus_unregister(&b, 0x100), 0);
	assert_false(bus_read(&b, 0x104, 1, &v));
	assert_int_equal(bus_unregister(&b, 0x100), -ENOENT);
	bus_destroy(&b);
}

/* ---- UART ----------------------------------------------------------------- */

struct irq_log {
	int level;
	int raises;
};

static void irq_set(void *ctx, unsigned gsi, int level)
{
	struct irq_log *l = ctx;
	assert_int_equal(gsi, 4);
	if (level && !l->level)
		l->raises++;
	l->level = level;
}

static uint8_t rd(struct uart *u, unsigned off)
{
	return (uint8_t)uart_ops.read(u, off, 1);
}

static void wr(struct uart *u, unsigned off, uint8_t v)
{
	uart_ops.write(u, off, 1, v);
}

static void test_uart(void **state)
{
	struct irq_log irq = {0};
	struct uart u;
	int p[2];
	char out[8] = {0};
	(void)state;

	assert_int_equal(pipe(p), 0);
	uart_init(&u, (struct dev_irq){.set_level = irq_set, .ctx = &irq, .gsi = 4}, p[1]);

	/* Scratch register and divisor latch, as the 8250 probe checks them. */
	wr(&u, 7, 0xa5);
	assert_int_equal(rd(&u, 7), 0xa5);
	wr(&u, 3, 0x80);
	wr(&u, 0, 0x01);
	wr(&u, 1, 0x00);
	assert_int_equal(rd(&u, 0), 0x01);
	wr(&u, 3, 0x03); /* 8N1, DLAB off */

	/* FIFO: IIR reports 16550A FIFOs once enabled. */
	wr(&u, 2, 0x07);
	assert_int_equal(rd(&u, 2) & 0xc0, 0xc0);

	/* Loopback: MSR mirrors MCR; THR comes back in RBR and is not output. */
	wr(&u, 4, 0x10 | 0x0f);
	assert_int_equal(rd(&u, 6) & 0xf0, 0xf0);
	wr(&u, 0, 'L');
	assert_true(rd(&u, 5) & 0x01);
	assert_int_equal(rd(&u, 0), 'L');
	assert_false(rd(&u, 5) & 0x01);
	wr(&u, 4, 0x0b);

	/* LSR: transmitter always empty. */
	assert_int_equal(rd(&u, 5) & 0x60, 0x60);

	/* THRI: raised when enabled, cleared by reading IIR, raised again by THR. */
	wr(&u, 1, 0x02);
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x02);
	assert_int_equal(irq.level, 0);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x01);
	wr(&u, 0, 'h');
	wr(&u, 0, 'i');
	assert_int_equal(irq.level, 1);
	assert_int_equal(read(p[0], out, sizeof(out)), 2);
	assert_string_equal(out, "hi");
	assert_int_equal(rd(&u, 2) & 0x0f, 0x02);

	/* Receive: host input raises RDI, which has priority over THRI. */
	wr(&u, 1, 0x03);
	assert_int_equal(uart_input(&u, (const uint8_t *)"ab", 2), 2);
	assert_int_equal(irq.level, 1);
	assert_int_equal(rd(&u, 2) & 0x0f, 0x04);
	assert_int_equal(rd(&u, 0), 'a');
	assert_int_equal(rd(&u, 0), 'b');
	assert_int_equal(rd(&u, 5) & 0x01, 0);
	/* Reading an empty RBR is harmless. */
	assert_int_equal(rd(&u, 0), 0);

	/* A full FIFO takes no more input. */
	wr(&u, 1, 0);
	uint8_t big[UART_RX_FIFO + 10];
	memset(big, 'x', sizeof(big));
	assert_int_equal(uart_input(&u, big, sizeof(big)), UART_RX_FIFO);
	assert_int_equal(uart_rx_space(&u), 0);
	wr(&u, 2, 0x03); /* FCR: clear RX FIFO */
	assert_int_equal(uart_rx_space(&u), UART_RX_FIFO);

	/* Any offset and width: no crash. */
	for (unsigned off = 0; off < 8; off++) {
		uart_ops.write(&u, off, 4, 0xffffffff);
		(void)uart_ops.read(&u, off, 4);
	}
	uart_destroy(&u);
	close(p[0]);
	close(p[1]);
}

/* ---- PCI ------------------------------------------------------------------ */

static uint32_t cfg1_read(struct pci_bus *bus, unsigned dev, unsigned reg, unsigned len)
{
	pci_cf8_ops.write(bus, 0, 4, 0x80000000u | dev << 11 | (reg & 0xfc));
	return (uint32_t)pci_cfc_ops.read(bus, reg & 3, len);
}

static void test_pci(void **state)
{
	struct pci_bus bus;
	struct pci_func f;
	(void)state;

	pci_bus_init(&bus);
	/* The probe Linux does: write 0x80000000 to 0xCF8 and read it back. */
	pci_cf8_ops.write(&bus, 0, 4, 0x80000000u);
	assert_int_equal(pci_cf8_ops.read(&bus, 0, 4), 0x80000000u);

	/* Host bridge at 00:00.0, class 0x0600. */
	assert_int_equal(cfg1_read(&bus, 0, 0, 4), 0x00081b36);
	assert_int_equal(cfg1_read(&bus, 0, 0x0a, 2), 0x0600);
	assert_int_equal(cfg1_read(&bus, 0, 0x0b, 1), 0x06);
	/* Empty slot reads all ones; so does a disabled CONFIG_ADDRESS. */
	assert_int_equal(cfg1_read(&bus, 5, 0, 4), 0xffffffffu);
	pci_cf8_ops.write(&bus, 0, 4, 0);
	assert_int_equal(pci_cfc_ops.read(&bus, 0, 4), 0xffffffffu);

	/* ECAM sees the same space. */
	assert_int_equal(pci_ecam_ops.read(&bus, 0, 4), 0x00081b36);
	assert_int_equal(pci_ecam_ops.read(&bus, 3 << 15, 2), 0xffff);
	assert_int_equal(pci_ecam_ops.read(&bus, 1 << 20, 4), 0xffffffffu); /* bus 1 */

	/* Read-only IDs; writable command bits only. */
	pci_ecam_ops.write(&bus, 0, 4, 0x12345678);
	assert_int_equal(pci_ecam_ops.read(&bus, 0, 4), 0x00081b36);
	pci_ecam_ops.write(&bus, 4, 2, 0xffff);
	assert_int_equal(pci_ecam_ops.read(&bus, 4, 2), 0x0547);
	/* Misaligned and oversized accesses are ignored. */
	pci_ecam_ops.write(&bus, 5, 2, 0);
	assert_int_equal(pci_ecam_ops.read(&bus, 5, 2), 0xffff);
	assert_int_equal(pci_ecam_ops.read(&bus, 4092, 8), UINT64_MAX);

	/* A device added in a slot appears; a taken slot is refused. */
	pci_func_init(&f, 0x1af4, 0x1042, 0x010000, 0, "test");
	assert_int_equal(pci_bus_add(&bus, 3, &f), 0);
	assert_int_equal(pci_bus_add(&bus, 3, &f), -EBUSY);
	assert_int_equal(pci_bus_add(&bus, 32, &f), -EINVAL);
	assert_int_equal(cfg1_read(&bus, 3, 0, 4), 0x10421af4);
	pci_bus_destroy(&bus);
}

/* ---- ACPI PM ---------------------------------------------------------------- */

static void pm_event_cb(void *ctx, enum pm_event ev)
{
	*(int *)ctx = (int)ev;
}

static void test_pm(void **state)
{
	struct pm p;
	int ev = 0;
	(void)state;

	pm_init(&p, 0x01, pm_event_cb, &ev);
	pm_ops.write(&p, 0, 1, (3 << 2) | 0x20); /* S3: not offered, ignored */
	assert_int_equal(ev, 0);
	pm_ops.write(&p, 0, 1, 5 << 2); /* no SLP_EN */
	assert_int_equal(ev, 0);
	pm_ops.write(&p, 0, 1, (5 << 2) | 0x20);
	assert_int_equal(ev, PM_EVENT_POWEROFF);
	pm_ops.write(&p, 0, 1, 0x01);
	assert_int_equal(ev, PM_EVENT_RESET);
	assert_int_equal(pm_ops.read(&p, 1, 1) & 0x80, 0x80);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bus),
	    cmocka_unit_test(test_uart),
	    cmocka_unit_test(test_pci),
	    cmocka_unit_test(test_pm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
