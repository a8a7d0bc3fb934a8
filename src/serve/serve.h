/*
 * serve.h - the pool daemon and its exports (src/serve): one process owns a
 * pool and serves its volumes to guests (vblk backend, vhost-user) and to
 * other programs (NBD), and runs `zonevm pool/vol` commands sent to it.
 *
 * What it owns: the sharing of one open pool between threads (one
 * readers-writer lock around every pool call, and the table of attached volumes), the control
 * socket ROOT/run/POOL.sock and its protocol, the NBD protocol.  What it
 * never does: parse a `pool`/`vol` command line (the CLI does, through the
 * run hook below) or touch the pool's format.  docs/SERVE.md has the
 * protocols and the lifetimes.
 *
 * Threads: every serve_* call may come from any thread unless it says
 * otherwise.  Errors are negative errno values; ERR (may be NULL) receives
 * a message that names the pool, volume or socket and the cause.
 */
#ifndef ZONEVM_SERVE_H
#define ZONEVM_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pool;
struct vblk_backend;

/* ---- a pool shared by threads (spool.c) --------------------------------- */

struct serve_pool;

/* Wrap an open pool (taking ownership of it). */
int serve_pool_wrap(struct pool *p, struct serve_pool **out);
/* Every pool and vol call goes between lock and unlock (exclusive)... */
void serve_pool_lock(struct serve_pool *sp);
/* ...except vol_read_shared, which goes between rdlock (or a successful
 * tryrdlock) and unlock, in several threads at once.  Writers go first:
 * rdlock waits while a lock is waited for, tryrdlock then fails. */
void serve_pool_rdlock(struct serve_pool *sp);
bool serve_pool_tryrdlock(struct serve_pool *sp);
void serve_pool_unlock(struct serve_pool *sp);
/* The pool, to be used only while locked. */
struct pool *serve_pool_get(struct serve_pool *sp);
/* Record that data was written: the periodic commit will pick it up. */
void serve_pool_dirtied(struct serve_pool *sp);
/* Commit if anything was written since the last commit (locks). */
int serve_pool_commit(struct serve_pool *sp);
/* Final commit and close; attached volumes must be detached first. */
int serve_pool_close(struct serve_pool *sp);

/*
 * Attach volume VOL (pool-relative: "vm1", or "vm1@snap" read-only) for
 * HOLDER (a name for messages: "nbd export /run/x.sock", "vm web1 (pid
 * 42)").  A volume has at most one read-write holder: a second read-write
 * attach fails with -EBUSY and names the holder.
 */
struct serve_attach;
int serve_attach(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                 struct serve_attach **out, char *err, size_t errlen);
void serve_detach(struct serve_attach *a);
/* Holder of VOL's read-write attach into BUF; false if none. */
bool serve_attach_holder(struct serve_pool *sp, const char *vol, char *buf, size_t len);
/*
 * Is NAME in use: attached itself, or (a volume) one of its snapshots?
 * BUF then says "POOL/VOL@SNAP is attached read-only by HOLDER".  For commands
 * that would pull a volume from under its users (destroy, rollback,
 * resize).  Call it with the pool locked (as a command holds it).
 */
bool serve_attach_busy(struct serve_pool *sp, const char *name, char *buf, size_t len);

/* ---- a volume as a virtio-blk backend (vblk_vol.c) ------------------------ */

/*
 * A struct vblk_backend (src/virtio/virtio.h) on volume VOL of SP, attached
 * for HOLDER (see serve_attach).  Each queue has a worker thread that does
 * the pool I/O and signals the queue's eventfd (queue_fd) on completion, so
 * submit/commit/reap never block on the pool.  READ/WRITE: vol_read and
 * vol_write; FLUSH and dsync writes: vol_flush (durable through the intent
 * log); DISCARD and WRITE_ZEROES: vol_punch.  Writes to a read-only attach
 * fail with -EROFS.  be->ops->destroy(be) waits for in-flight I/O, stops
 * the workers and detaches the volume; SP must outlive the backend.
 */
int serve_vblk_create(struct serve_pool *sp, const char *vol, bool ro, const char *holder,
                      unsigned nr_queues, unsigned depth, struct vblk_backend **out, char *err,
                      size_t errlen);

/* ---- the daemon and its control socket (daemon.c, ctl.c) --------------- */

/* ROOT/run/POOL.sock into BUF. */
void serve_sock_path(const char *root, const char *pool, char *buf, size_t len);

/* What the CLI gives the daemon. */
struct serve_hooks {
	/*
	 * Run a forwarded command line (argv[0] is "pool" or "vol") with FDS
	 * as its stdin, stdout and stderr and CWD_FD as its working directory;
	 * STOP_FD becomes readable when the client hung up or the daemon
	 * stops (for commands that run until then, like `vol serve`).  Returns
	 * the exit status.  Called from one thread per client.
	 */
	int (*run)(void *arg, int argc, char **argv, const int fds[3], int cwd_fd, int stop_fd);
	void *arg;
};

/*
 * Run the daemon for pool NAME (already open in SP, which it closes with a
 * final commit) until SIGTERM or SIGINT: create ROOT/run/NAME.sock (mode
 * 0600; a stale one is replaced), commit every few seconds, tell systemd
 * READY=1/STOPPING=1 when $NOTIFY_SOCKET is set.  Returns 0 after a clean
 * shutdown, or a negative errno (message on stderr).
 */
int serve_daemon(const char *root, const char *name, struct serve_pool *sp,
                 const struct serve_hooks *hooks);

/*
 * Block SIGTERM and SIGINT (call it before any thread starts, so that all
 * inherit it), ignore SIGPIPE, and return a non-blocking signalfd that
 * reads them; -errno on failure.
 */
int serve_signalfd(void);

/*
 * Client side: if a daemon serves POOL under ROOT, run ARGV there (with our
 * stdin, stdout, stderr and working directory) and return 0 with its exit
 * status in *STATUS.  -ENOENT when no daemon runs (open the pool directly).
 */
int serve_forward(const char *root, const char *pool, int argc, char **argv, int *status);

/*
 * Ask the daemon of POOL (POOLVOL is "POOL/VOL") to export the volume over
 * vhost-user-blk; on success SOCK receives the UNIX socket path to connect
 * to.  The export serves one frontend connection: the volume is attached
 * (read-write unless RO) for "pid N (COMM)" of the caller until that
 * frontend disconnects, or until the caller's process has exited (checked
 * every few seconds): the caller is the frontend, or outlives it.  Errors: -ENOENT no daemon for
 * POOL or no such volume, -EBUSY attached read-write elsewhere (ERR names the holder), -ENOTSUP
 * vhost-user not built in.
 */
int serve_export_vhost(const char *root, const char *poolvol, bool ro, char *sock, size_t socklen,
                       char *err, size_t errlen);

/* ---- NBD (nbd.c: protocol; nbd_export.c: listeners on a volume) ---------- */

/* What an NBD export does; each returns 0 or a negative errno. */
struct nbd_export_ops {
	int (*read)(void *arg, void *buf, uint32_t len, uint64_t off);
	int (*write)(void *arg, const void *buf, uint32_t len, uint64_t off);
	int (*flush)(void *arg);
	int (*trim)(void *arg, uint64_t off, uint32_t len);
	int (*zero)(void *arg, uint64_t off, uint32_t len);
};

struct nbd_export {
	const char *name; /* export name; a client may also ask for "" */
	uint64_t size;
	bool ro;
	const struct nbd_export_ops *ops;
	void *arg;
};

#define NBD_MAX_PAYLOAD (32u << 20) /* largest READ/WRITE accepted */

/*
 * Serve one NBD client on connected socket FD: fixed newstyle handshake
 * (EXPORT_NAME, GO, INFO, LIST, ABORT, STRUCTURED_REPLY), then READ, WRITE
 * (FUA), FLUSH, TRIM, WRITE_ZEROES and DISC until the client leaves.
 * Every field is checked; a request the protocol cannot recover from
 * (bad magic, payload over NBD_MAX_PAYLOAD) ends the session.  Returns 0
 * after DISC/ABORT or EOF, a negative errno otherwise.  Does not close FD.
 */
int nbd_session(int fd, const struct nbd_export *ex);

struct serve_export;
/*
 * Export volume VOL of SP (attached for "nbd export ADDR") over NBD on ADDR
 * (a UNIX socket path, or HOST:PORT for TCP), and/or over vhost-user-blk
 * on VHOST (a socket path); either may be NULL.  Each NBD client gets a
 * thread.  serve_export_stop() closes the listeners, ends the sessions and
 * detaches.
 */
int serve_export_start(struct serve_pool *sp, const char *vol, bool ro, const char *nbd_addr,
                       const char *vhost_sock, struct serve_export **out, char *err, size_t errlen);
void serve_export_stop(struct serve_export *e);

#endif
