/*
 * loop.c - the main thread's epoll event loop while the VM runs.
 *
 * Owns what the main thread waits on: the eventfd by which vCPU threads
 * report that the VM must stop, SIGINT/SIGTERM/SIGHUP (signalfd), console
 * input for COM1 (raw mode when it is a terminal; Ctrl-] then q quits), and
 * the descriptors devices register with vm_watch_fd() (ioeventfd doorbells,
 * disk completions).  It never blocks on anything else, and always restores
 * the terminal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "internal.h"

#define CONSOLE_ESCAPE 0x1d         /* Ctrl-] then 'q' quits */
#define VM_WATCH_TAG   (1ULL << 32) /* epoll data: watch index, not an fd */

int vm_watch_fd(struct vm *vm, int fd, void (*cb)(void *ctx), void *ctx)
{
	struct vm_watch *w = realloc(vm->watches, (vm->nwatches + 1) * sizeof(*w));
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = VM_WATCH_TAG | vm->nwatches};

	if (!w)
		return -ENOMEM;
	vm->watches = w;
	if (epoll_ctl(vm->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	w[vm->nwatches++] = (struct vm_watch){.fd = fd, .cb = cb, .ctx = ctx};
	return 0;
}

int vm_watch_set(struct vm *vm, int fd, bool on)
{
	for (unsigned i = 0; i < vm->nwatches; i++) {
		struct epoll_event ev = {.events = on ? EPOLLIN : 0, .data.u64 = VM_WATCH_TAG | i};

		if (vm->watches[i].fd == fd)
			return epoll_ctl(vm->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

struct console {
	int fd;
	bool tty;
	bool saw_escape;
	bool paused; /* the UART's FIFO is full: stop reading until it drains */
	struct termios saved;
};

static void console_setup(struct console *con, int fd)
{
	struct termios raw;

	con->fd = fd;
	con->tty = fd >= 0 && isatty(fd) && tcgetattr(fd, &con->saved) == 0;
	if (!con->tty)
		return;
	raw = con->saved;
	cfmakeraw(&raw);
	tcsetattr(fd, TCSANOW, &raw);
}

static void console_restore(struct console *con)
{
	if (con->tty)
		tcsetattr(con->fd, TCSANOW, &con->saved);
}

/* Feed stdin to the UART; returns false at the escape sequence. */
static bool console_input(struct vm *vm, struct console *con, int epfd)
{
	uint8_t buf[256], out[256];
	size_t room = uart_rx_space(&vm->com1), m = 0;
	ssize_t n;

	if (room == 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, con->fd, NULL);
		con->paused = true;
		return true;
	}
	n = read(con->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	if (n <= 0) {
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return true;
		epoll_ctl(epfd, EPOLL_CTL_DEL, con->fd, NULL); /* EOF: no more input */
		con->fd = -1;
		return true;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (con->saw_escape) {
			con->saw_escape = false;
			if (buf[i] == 'q' || buf[i] == 'Q')
				return false;
			out[m++] = buf[i]; /* Ctrl-] Ctrl-] sends one Ctrl-] */
		} else if (buf[i] == CONSOLE_ESCAPE && con->tty) {
			con->saw_escape = true;
		} else {
			out[m++] = buf[i];
		}
	}
	uart_input(&vm->com1, out, m);
	return true;
}

int vm_loop(struct vm *vm, sigset_t *sigs)
{
	struct console con = {.fd = -1};
	struct epoll_event ev = {.events = EPOLLIN};
	int epfd = vm->epfd;
	int sfd = signalfd(-1, sigs, SFD_CLOEXEC);

	if (sfd < 0) {
		vm_log("cannot set up the event loop: %s", strerror(errno));
		vm_request_exit(vm, VMM_EXIT_ERROR);
		goto out;
	}
	ev.data.fd = vm->exit_efd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, vm->exit_efd, &ev);
	ev.data.fd = sfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	console_setup(&con, vm->cfg->console_in);
	if (con.fd >= 0) {
		ev.data.fd = con.fd;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, con.fd, &ev) < 0)
			con.fd = -1; /* a regular file or /dev/null: no interactive input */
	}

	while (__atomic_load_n(&vm->exit_status, __ATOMIC_SEQ_CST) < 0) {
		struct epoll_event evs[32];
		int n = epoll_wait(epfd, evs, 32, con.paused ? 10 : -1);
		if (n < 0 && errno != EINTR) {
			vm_log("epoll_wait: %s", strerror(errno));
			vm_request_exit(vm, VMM_EXIT_ERROR);
			break;
		}
		if (con.paused && uart_rx_space(&vm->com1) > 0) {
			con.paused = false;
			ev.data.fd = con.fd;
			epoll_ctl(epfd, EPOLL_CTL_ADD, con.fd, &ev);
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (evs[i].data.u64 & VM_WATCH_TAG) {
				struct vm_watch *w = &vm->watches[evs[i].data.u64 & ~VM_WATCH_TAG];
				w->cb(w->ctx);
			} else if (fd == sfd) {
				struct signalfd_siginfo si;
				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					vm_log("stopped by signal %u", si.ssi_signo);
					vm_request_exit(vm, VMM_EXIT_SIGNAL);
				}
			} else if (fd == con.fd) {
				if (!console_input(vm, &con, epfd)) {
					vm_log("console escape: stopping the VM");
					vm_request_exit(vm, VMM_EXIT_SIGNAL);
				}
			} else if (fd == vm->exit_efd) {
				uint64_t v;
				if (read(fd, &v, sizeof(v)) < 0) {
					/* Only wakes us; exit_status says why. */
				}
			}
		}
	}
out:
	console_restore(&con);
	if (sfd >= 0)
		close(sfd);
	return vm->exit_status;
}
