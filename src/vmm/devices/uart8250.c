/*
 * uart8250.c - a 16550A-compatible UART for the guest console (COM1).
 *
 * Owns the register model: divisor latch, IER/IIR/FCR/LCR/MCR/LSR/MSR/SCR,
 * a receive FIFO fed by the host, loopback mode (the Linux driver's probe
 * uses it) and the interrupt line.  Transmit is instantaneous: a byte written
 * to THR goes straight to out_fd and the transmitter is empty again, so THRE
 * and TEMT always read set.  It never reads the host terminal itself: the
 * event loop feeds it with uart_input().
 *
 *   off  DLAB=0 read / write       DLAB=1
 *   0    RBR / THR                 DLL
 *   1    IER                       DLM
 *   2    IIR / FCR
 *   3    LCR (bit 7 = DLAB)
 *   4    MCR (bit 4 = loopback)
 *   5    LSR (DR, THRE, TEMT)
 *   6    MSR
 *   7    SCR
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "devices.h"

#define IER_RDI  0x01
#define IER_THRI 0x02
#define IER_MASK 0x0f

#define IIR_NONE 0x01
#define IIR_THRI 0x02
#define IIR_RDI  0x04
#define IIR_FIFO 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI  0x40
#define MSR_DCD 0x80

void uart_init(struct uart *u, struct dev_irq irq, int out_fd)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	u->irq = irq;
	u->out_fd = out_fd;
	u->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	u->mcr = MCR_OUT2;
	u->dll = 12; /* 9600 baud: what a PC BIOS leaves */
}

void uart_destroy(struct uart *u)
{
	pthread_mutex_destroy(&u->lock);
}

/* Caller holds the lock. */
static uint8_t uart_iir(const struct uart *u)
{
	uint8_t fifo = (u->fcr & FCR_ENABLE) ? IIR_FIFO : 0;

	if ((u->ier & IER_RDI) && u->rx_len)
		return IIR_RDI | fifo;
	if ((u->ier & IER_THRI) && u->iir_thri_pending)
		return IIR_THRI | fifo;
	return IIR_NONE | fifo;
}

static void uart_update_irq(struct uart *u)
{
	int level = !(uart_iir(u) & IIR_NONE);

	if (level == u->irq_level)
		return;
	u->irq_level = level;
	if (u->irq.set_level)
		u->irq.set_level(u->irq.ctx, u->irq.gsi, level);
}

static void uart_rx_push(struct uart *u, uint8_t c)
{
	if (u->rx_len == UART_RX_FIFO) {
		u->lsr_extra |= 0x02; /* overrun */
		return;
	}
	u->rx[(u->rx_head + u->rx_len) % UART_RX_FIFO] = c;
	u->rx_len++;
	u->rx_bytes++;
}

static void uart_tx(struct uart *u, uint8_t c)
{
	if (u->mcr & MCR_LOOP) {
		uart_rx_push(u, c);
		return;
	}
	for (;;) {
		ssize_t n = write(u->out_fd, &c, 1);
		if (n == 1) {
			u->tx_bytes++;
			return;
		}
		if (n < 0 && errno == EINTR)
			continue;
		u->tx_errors++; /* console gone: the guest keeps running */
		return;
	}
}

static uint8_t uart_msr(const struct uart *u)
{
	uint8_t m = 0;

	if (!(u->mcr & MCR_LOOP))
		return u->msr;
	if (u->mcr & MCR_RTS)
		m |= MSR_CTS;
	if (u->mcr & MCR_DTR)
		m |= MSR_DSR;
	if (u->mcr & MCR_OUT1)
		m |= MSR_RI;
	if (u->mcr & MCR_OUT2)
		m |= MSR_DCD;
	return m;
}

static uint64_t uart_read(void *ctx, uint64_t off, unsigned len)
{
	struct uart *u = ctx;
	uint8_t v = 0xff;

	(void)len; /* wider accesses read the first register */
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case 0:
		if (u->lcr & LCR_DLAB) {
			v = u->dll;
		} else if (u->rx_len) {
			v = u->rx[u->rx_head];
			u->rx_head = (u->rx_head + 1) % UART_RX_FIFO;
			u->rx_len--;
		} else {
			v = 0;
		}
		break;
	case 1:
		v = (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
		break;
	case 2:
		v = uart_iir(u);
		if ((v & 0x0f) == IIR_THRI)
			u->iir_thri_pending = 0;
		break;
	case 3:
		v = u->lcr;
		break;
	case 4:
		v = u->mcr;
		break;
	case 5:
		v = LSR_THRE | LSR_TEMT | (u->rx_len ? LSR_DR : 0) | u->lsr_extra;
		u->lsr_extra = 0;
		break;
	case 6:
		v = uart_msr(u);
		break;
	case 7:
		v = u->scr;
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return v;
}

static void uart_write(void *ctx, uint64_t off, unsigned len, uint64_t val)
{
	struct uart *u = ctx;
	uint8_t v = (uint8_t)val;

	(void)len;
	pthread_mutex_lock(&u->lock);
	switch (off) {
	case 0:
		if (u->lcr & LCR_DLAB) {
			u->dll = v;
		} else {
			uart_tx(u, v);
			u->iir_thri_pending = 1; /* transmitted at once: empty again */
		}
		break;
	case 1:
		if (u->lcr & LCR_DLAB) {
			u->dlm = v;
		} else {
			/* Enabling THRI with an empty transmitter raises it at once. */
			if ((v & IER_THRI) && !(u->ier & IER_THRI))
				u->iir_thri_pending = 1;
			u->ier = v & IER_MASK;
		}
		break;
	case 2:
		u->fcr = v & (FCR_ENABLE | 0xc0);
		if (v & FCR_CLEAR_RX)
			u->rx_head = u->rx_len = 0;
		break;
	case 3:
		u->lcr = v;
		break;
	case 4:
		u->mcr = v & 0x1f;
		break;
	case 7:
		u->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
}

const struct bus_ops uart_ops = {
    .read = uart_read,
    .write = uart_write,
};

size_t uart_input(struct uart *u, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&u->lock);
	if (!(u->mcr & MCR_LOOP))
		for (; n < len && u->rx_len < UART_RX_FIFO; n++)
			uart_rx_push(u, buf[n]);
	uart_update_irq(u);
	pthread_mutex_unlock(&u->lock);
	return n;
}

size_t uart_rx_space(struct uart *u)
{
	size_t space;

	pthread_mutex_lock(&u->lock);
	space = UART_RX_FIFO - u->rx_len;
	pthread_mutex_unlock(&u->lock);
	return space;
}
