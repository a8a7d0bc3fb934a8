/*
 * irq.c - interrupt routing of the VM: the KVM GSI routing table, MSI
 * routes bound to irqfds, and ioeventfd doorbells.
 *
 * It owns the whole routing table, because KVM_SET_GSI_ROUTING replaces
 * every entry at once: the default in-kernel irqchip routes (GSIs 0-15 on
 * the PIC and 0-23 on the IOAPIC, as KVM sets them up itself) and, above
 * them, one MSI route per GSI handed out by irq_msi_alloc.  Each MSI GSI is
 * bound once to an eventfd (KVM_IRQFD); a device signals the guest by
 * writing that eventfd, from any thread, without an exit to KVM's ioctl
 * path.  It never decides when to interrupt (msix.c does) and never polls.
 *
 *   GSI  0..15  PIC pin gsi % 8 (chip 0 or 1)  +  IOAPIC pin gsi
 *   GSI 16..23  IOAPIC pin gsi
 *   GSI 24..    MSI: address/data as the guest wrote its MSI-X entry
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

#define IRQ_PIC_PINS    16
#define IRQ_IOAPIC_PINS 24

int irq_init(struct irq_router *r, int kvm_fd, int vm_fd)
{
	int max;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->lock, NULL);
	r->vm_fd = vm_fd;
	max = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQ_ROUTING);
	if (max <= IRQ_FIRST_MSI_GSI || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQFD) <= 0 ||
	    ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD) <= 0) {
		vm_log("this host's KVM lacks GSI routing, irqfd or ioeventfd, which virtio "
		       "devices need");
		return -ENOTSUP;
	}
	r->max_gsi = (unsigned)max;
	r->ioeventfd_any_len = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IOEVENTFD_ANY_LENGTH) > 0;
	return 0;
}

void irq_destroy(struct irq_router *r)
{
	free(r->msi);
	r->msi = NULL;
	pthread_mutex_destroy(&r->lock);
}

/* Push the whole table; caller holds the lock. */
static int irq_push(struct irq_router *r)
{
	unsigned n = IRQ_PIC_PINS + IRQ_IOAPIC_PINS + r->nmsi, i = 0;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + n * sizeof(t->entries[0]));
	int ret = 0;

	if (!t)
		return -ENOMEM;
	for (unsigned g = 0; g < IRQ_PIC_PINS; g++)
		t->entries[i++] = (struct kvm_irq_routing_entry){
		    .gsi = g,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = g < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
		                  .pin = g % 8},
		};
	for (unsigned g = 0; g < IRQ_IOAPIC_PINS; g++)
		t->entries[i++] = (struct kvm_irq_routing_entry){
		    .gsi = g,
		    .type = KVM_IRQ_ROUTING_IRQCHIP,
		    .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = g},
		};
	for (unsigned m = 0; m < r->nmsi; m++)
		t->entries[i++] = (struct kvm_irq_routing_entry){
		    .gsi = IRQ_FIRST_MSI_GSI + m,
		    .type = KVM_IRQ_ROUTING_MSI,
		    .u.msi = {.address_lo = (uint32_t)r->msi[m].addr,
		              .address_hi = (uint32_t)(r->msi[m].addr >> 32),
		              .data = r->msi[m].data},
		};
	t->nr = i;
	if (ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t) < 0)
		ret = -errno;
	free(t);
	return ret;
}

int irq_msi_alloc(struct irq_router *r, int efd)
{
	struct kvm_irqfd bind = {.fd = (uint32_t)efd};
	int ret;

	pthread_mutex_lock(&r->lock);
	if (IRQ_FIRST_MSI_GSI + r->nmsi >= r->max_gsi) {
		ret = -ENOSPC;
		goto out;
	}
	if (r->nmsi == r->cap) {
		unsigned cap = r->cap ? r->cap * 2 : 32;
		struct irq_msi *m = realloc(r->msi, cap * sizeof(*m));
		if (!m) {
			ret = -ENOMEM;
			goto out;
		}
		r->msi = m;
		r->cap = cap;
	}
	/* Until the guest writes a message, the route is an MSI to nobody; it
	 * is never used, since masked vectors do not signal the eventfd. */
	r->msi[r->nmsi] = (struct irq_msi){.addr = 0xfee00000, .data = 0};
	r->nmsi++;
	ret = irq_push(r);
	bind.gsi = IRQ_FIRST_MSI_GSI + r->nmsi - 1;
	if (ret == 0 && ioctl(r->vm_fd, KVM_IRQFD, &bind) < 0)
		ret = -errno;
	if (ret < 0) {
		r->nmsi--;
		vm_log("cannot route MSI GSI %u: %s", bind.gsi, strerror(-ret));
		goto out;
	}
	ret = (int)bind.gsi;
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_msi_set(struct irq_router *r, unsigned gsi, uint64_t addr, uint32_t data)
{
	int ret = -EINVAL;

	pthread_mutex_lock(&r->lock);
	if (gsi >= IRQ_FIRST_MSI_GSI && gsi - IRQ_FIRST_MSI_GSI < r->nmsi) {
		struct irq_msi *m = &r->msi[gsi - IRQ_FIRST_MSI_GSI];
		ret = 0;
		if (m->addr != addr || m->data != data) {
			m->addr = addr;
			m->data = data;
			ret = irq_push(r);
		}
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_ioeventfd(struct irq_router *r, uint64_t gpa, int efd, bool assign)
{
	struct kvm_ioeventfd io = {
	    .addr = gpa,
	    /* Length 0 matches a write of any width (and takes KVM's fast
	     * MMIO path); otherwise the 16-bit write virtio drivers use. */
	    .len = r->ioeventfd_any_len ? 0 : 2,
	    .fd = efd,
	    .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
	};

	return ioctl(r->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}
