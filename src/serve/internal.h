/*
 * internal.h - what the files of src/serve share; not for other folders.
 */
#ifndef ZONEVM_SERVE_INTERNAL_H
#define ZONEVM_SERVE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "serve.h"

/* Message into ERR (may be NULL); returns ERRNO_NEG. */
int serve_err(char *err, size_t len, int errno_neg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "zonevm serve: MSG" on the daemon's log: serve_log_fd, else stderr. */
extern int serve_log_fd;
void serve_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The pool's name, for messages. */
const char *serve_pool_name(struct serve_pool *sp);

/* Read or write exactly LEN bytes; 0, -EPIPE at EOF, or -errno. */
int serve_read_full(int fd, void *buf, size_t len);
int serve_write_full(int fd, const void *buf, size_t len);

/* Listen on a UNIX socket path (mode 0600, a stale file replaced) or HOST:PORT. */
int serve_listen(const char *addr, char *err, size_t errlen);

/* ---- vhost-user-blk exports (vhost_export.c) ---- */
struct serve_vhost;
/*
 * Serve volume VOL of SP (attached for HOLDER) over vhost-user-blk on SOCK.
 * ONCE: one frontend connection only; GONE(ARG) is then called on the
 * server's thread when it ended (stop it from another thread).
 */
int serve_vhost_start(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                      const char *sock, bool once, void (*gone)(void *), void *arg,
                      struct serve_vhost **out, char *err, size_t errlen);
void serve_vhost_stop(struct serve_vhost *v);

/* ---- control protocol (ctl.c) ---- */
#define SERVE_CTL_MAGIC 0x3143565au /* "ZVC1" */
#define SERVE_CTL_HDR   8u
#define SERVE_CTL_MAX   16384u /* payload bytes */
#define SERVE_CTL_FDS   4u

enum { SERVE_CTL_RUN = 1, SERVE_CTL_VHOST = 2, SERVE_CTL_REPLY = 100 };

int serve_ctl_send(int fd, uint32_t type, const void *payload, size_t len, const int *fds,
                   unsigned nfds);
/*
 * Receive one message: PAYLOAD (SERVE_CTL_MAX bytes) and *LEN; up to *NFDS
 * descriptors into FDS (others are closed), *NFDS set to how many came.
 * -EBADMSG for a truncated or foreign message, -EPIPE at EOF.
 */
int serve_ctl_recv(int fd, uint32_t *type, void *payload, size_t *len, int *fds, unsigned *nfds);
/* Split a RUN payload into at most MAX args (ARGV has MAX + 1 slots). */
int serve_ctl_split_argv(char *payload, size_t len, char **argv, int max);
int serve_ctl_reply(int fd, int32_t status, const char *text);

#endif
