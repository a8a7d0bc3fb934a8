/*
 * internal.h - what the files of src/serve share; not for other folders.
 */
#ifndef ZONEVM_SERVE_INTERNAL_H
#define ZONEVM_SERVE_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

#include "serve.h"

/* Message into ERR (may be NULL); returns ERRNO_NEG. */
int serve_err(char *err, size_t len, int errno_neg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "zonevm serve: MSG" on the daemon's log (stderr). */
void serve_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The pool's name, for messages. */
const char *serve_pool_name(struct serve_pool *sp);

/* Read or write exactly LEN bytes; 0, -EPIPE at EOF, or -errno. */
int serve_read_full(int fd, void *buf, size_t len);
int serve_write_full(int fd, const void *buf, size_t len);

/* Listen on a UNIX socket path (mode 0600, a stale file replaced) or HOST:PORT. */
int serve_listen(const char *addr, char *err, size_t errlen);

#endif
