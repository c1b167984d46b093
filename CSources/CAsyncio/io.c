/*
 * io.c — the loop's low-level I/O (Lib/asyncio/selector_events.py sock_*,
 * add_reader/add_writer), byte buffers, errno → OSError subclasses, and the
 * completion dispatch every backend reports through.
 *
 * Where we differ on purpose: operations are completion-based (one SQE per
 * operation on io_uring), so a sock_* call never tries the syscall inline
 * the way selector_events does; and a cancelled operation may still
 * complete in the kernel, so whatever it brought in (bytes, an accepted
 * connection) is kept per fd and handed to the next operation.
 */
#include "executor_internal.h"
#include "io_internal.h"
#include "signal_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* MARK: - Bytes */

static void bytes_dealloc(ca_object *op);
const ca_type ca_BytesType = {"bytes", sizeof(ca_bytes), bytes_dealloc, NULL};

/* Inline storage follows the header; a grown buffer moves its data to a
 * block of its own (data != the inline area). */
static inline uint8_t *bytes_inline(ca_bytes *b) { return (uint8_t *)(b + 1); }

ca_bytes *ca_bytes_new(size_t cap) {
    if (cap > SIZE_MAX - sizeof(ca_bytes)) return NULL;
    ca_bytes *b = ca_small_alloc(sizeof(ca_bytes) + cap);
    if (b == NULL) return NULL;
    ca_object_init(b, &ca_BytesType);
    b->len = 0;
    b->cap = cap;
    b->data = bytes_inline(b);
    b->inline_cap_ = cap;
    return b;
}

ca_bytes *ca_bytes_from(const void *data, size_t len) {
    ca_bytes *b = ca_bytes_new(len);
    if (b == NULL) return NULL;
    if (len > 0) memcpy(b->data, data, len);
    b->len = len;
    return b;
}

bool ca_bytes_check(const void *op) { return op != NULL && ((const ca_object *)op)->ob_type == &ca_BytesType; }

ca_error *ca_bytes_reserve(ca_bytes *b, size_t cap) {
    if (cap <= b->cap) return NULL;
    size_t ncap = b->cap < 64 ? 64 : b->cap;
    while (ncap < cap) ncap = ncap > SIZE_MAX / 2 ? cap : ncap * 2;
    uint8_t *nd = ca_small_alloc(ncap);
    if (nd == NULL) return ca_error_new(&ca_MemoryError, NULL);
    memcpy(nd, b->data, b->len);
    if (b->data != bytes_inline(b)) ca_small_free(b->data, b->cap);
    b->data = nd;
    b->cap = ncap;
    return NULL;
}

ca_error *ca_bytes_append(ca_bytes *b, const void *data, size_t len) {
    if (len == 0) return NULL;
    if (b->len + len > b->cap) {
        ca_error *err = ca_bytes_reserve(b, b->len + len);
        if (err != NULL) return err;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return NULL;
}

static void bytes_dealloc(ca_object *op) {
    ca_bytes *b = (ca_bytes *)op;
    if (b->data != bytes_inline(b)) ca_small_free(b->data, b->cap);
    ca_small_free(b, sizeof(ca_bytes) + b->inline_cap_);
}

/* MARK: - Errors */

const ca_error_type ca_BlockingIOError = {"BlockingIOError", &ca_OSError};
const ca_error_type ca_ChildProcessError = {"ChildProcessError", &ca_OSError};
const ca_error_type ca_FileExistsError = {"FileExistsError", &ca_OSError};
const ca_error_type ca_FileNotFoundError = {"FileNotFoundError", &ca_OSError};
const ca_error_type ca_InterruptedError = {"InterruptedError", &ca_OSError};
const ca_error_type ca_IsADirectoryError = {"IsADirectoryError", &ca_OSError};
const ca_error_type ca_NotADirectoryError = {"NotADirectoryError", &ca_OSError};
const ca_error_type ca_PermissionError = {"PermissionError", &ca_OSError};
const ca_error_type ca_ProcessLookupError = {"ProcessLookupError", &ca_OSError};

/* Objects/exceptions.c _PyExc_InitState's errnomap. */
const ca_error_type *ca_error_type_for_errno(int err_no) {
    switch (err_no) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
    case EALREADY:
    case EINPROGRESS: return &ca_BlockingIOError;
    case ECHILD: return &ca_ChildProcessError;
    case EPIPE:
    case ESHUTDOWN: return &ca_BrokenPipeError;
    case ECONNABORTED: return &ca_ConnectionAbortedError;
    case ECONNREFUSED: return &ca_ConnectionRefusedError;
    case ECONNRESET: return &ca_ConnectionResetError;
    case EEXIST: return &ca_FileExistsError;
    case ENOENT: return &ca_FileNotFoundError;
    case EISDIR: return &ca_IsADirectoryError;
    case ENOTDIR: return &ca_NotADirectoryError;
    case EINTR: return &ca_InterruptedError;
    case EACCES:
    case EPERM: return &ca_PermissionError;
    case ESRCH: return &ca_ProcessLookupError;
    case ETIMEDOUT: return &ca_TimeoutError;
    default: return &ca_OSError;
    }
}

ca_error *ca_error_from_io(int err_no, const char *op) {
    return ca_error_from_errno(ca_error_type_for_errno(err_no), err_no, op);
}

/* MARK: - Completion dispatch */

void ca_io_dispatch(ca_io_op *op, int32_t res, uint32_t cflags) {
    ca_loop *loop = op->loop;
    if (CA_UNLIKELY(cflags & CA_IO_CQE_MORE)) {
        op->complete(op, res, cflags);
        return;
    }
    loop->io_pending--;
    if (CA_UNLIKELY(!(op->flags & CA_IO_F_COUNTED))) {
        op->complete(op, res, cflags);
        return;
    }
    /* The fd's count drops after the owner ran: what it submits again
     * from its completion keeps the fd busy throughout. The op itself
     * may be gone by then. */
    int fd = op->fd;
    op->flags &= (uint8_t)~CA_IO_F_COUNTED;
    op->complete(op, res, cflags);
    ca_io_fd_release_in(loop, loop->io, fd);
}

void ca_io_apply_fault(ca_loop *loop, ca_io_op *op) {
    ca_io_loop *io = loop->io;
    ca_io_fault_action a = {0};
    io->fault(io->fault_arg, (ca_io_opcode)op->opcode, op->fd, op->len, &a);
    bool fired = false;
    if (a.error > 0 || a.eof) {
        op->flags |= CA_IO_F_INJECT;
        op->injected_res = a.error > 0 ? -a.error : 0;
        fired = true;
    }
    if (a.race_result > 0) {
        op->flags |= CA_IO_F_INJECT | CA_IO_F_WINS_CANCEL;
        op->injected_res = a.race_result;
        fired = true;
    }
    if (a.max_len > 0 && (op->opcode == CA_IO_RECV || op->opcode == CA_IO_SEND)) {
        if ((op->flags & CA_IO_F_BUF_SELECT) && op->buf != NULL && !(op->flags & CA_IO_F_INJECT)) {
            /* a short read cannot be had from a provided buffer: a
             * single-shot read into the owner's buffer stands in */
            op->flags &= (uint8_t)~CA_IO_F_BUF_SELECT;
        }
        if (!(op->flags & CA_IO_F_BUF_SELECT) && op->len > a.max_len) {
            op->len = a.max_len;
            fired = true;
        }
    }
    if (a.sq_full) {
        op->flags |= CA_IO_F_FAULT_SQ_FULL;
        fired = true;
    }
    if (fired) io->faults++;
}

/* MARK: - Per-fd records */

/* A reader or writer: a POLL op re-armed after each callback, which keeps
 * selectors' level-triggered behaviour. */
typedef struct io_watch {
    ca_io_op op;
    ca_callback_fn fn;
    void *arg;
    ca_release_fn release;
    uint8_t active;     /* registered */
    uint8_t scheduled;  /* a handle to run it is queued */
    uint8_t dead;       /* forgotten: free once neither in flight nor scheduled */
} io_watch;

struct io_fdinfo {
    ca_bytes *stash;    /* received by a cancelled receive, returned first by the next */
    int *accepted;      /* accepted by a cancelled accept, oldest first */
    uint32_t naccepted;
    uint32_t accepted_cap;
    io_watch *reader;
    io_watch *writer;
};

ca_io_loop *ca_io_loop_get(ca_loop *loop) {
    if (CA_LIKELY(loop->io != NULL)) return loop->io;
    ca_io_loop *io = ca_calloc(1, sizeof *io);
    loop->io = io;
    return io;
}

/* MARK: - Operations in flight per fd
 *
 * A cancelled operation's owner is done with it at once, but the kernel
 * (or an executor thread) may still be in it, using the fd number. Closing
 * the fd then would let the number be reused while the operation runs, and
 * a step of it not started yet would act on another file. So every
 * operation is counted on its fd until its final completion, and closes
 * that must not race one wait for the count to fall to zero. */

bool ca_io_fd_hold(ca_loop *loop, int fd) {
    ca_io_loop *io = ca_io_loop_get(loop);
    ca_io_fd *e = io != NULL && fd >= 0 ? ca_io_fd_get(io, fd) : NULL;
    if (e == NULL) return false;
    e->inflight++;
    return true;
}

void ca_io_count_slow(ca_loop *loop, ca_io_op *op) {
    if (ca_io_fd_hold(loop, op->fd)) {
        op->flags |= CA_IO_F_COUNTED;
        return;
    }
    op->flags |= CA_IO_F_INJECT; /* completes as a no-op: the fd is never touched */
    op->injected_res = -ENOMEM;
}

/* Forgets and closes `fd` now (a closed loop's table goes with it). */
static void fd_close_now(ca_loop *loop, int fd) {
    if (!loop->closed) ca_loop_forget_fd(loop, fd);
    close(fd);
}

/* Runs every wait registered on `e` so far, oldest first. What they start
 * (file.c's CLOSE op) makes the fd busy again, and waits they add wait for
 * that; they may grow the table, so `e` is not used after the first. */
static void fd_run_idle_waits(ca_loop *loop, ca_io_fd *e, int fd) {
    ca_io_idle *w = e->idle, *order = NULL;
    e->idle = NULL;
    while (w != NULL) {
        ca_io_idle *next = w->next;
        w->next = order;
        order = w;
        w = next;
    }
    while (order != NULL) {
        ca_io_idle *next = order->next;
        order->next = NULL;
        order->fn(order, loop, fd);
        order = next;
    }
}

void ca_io_fd_went_idle(ca_loop *loop, int fd) {
    fd_run_idle_waits(loop, &loop->io->fds[fd], fd);
    ca_io_fd *e = &loop->io->fds[fd]; /* (the table may have grown) */
    if (e->close_pending && e->inflight == 0) {
        e->close_pending = 0;
        fd_close_now(loop, fd);
    }
}

void ca_io_when_idle(ca_loop *loop, int fd, ca_io_idle *w, void (*fn)(ca_io_idle *w, ca_loop *loop, int fd)) {
    w->fn = fn;
    w->next = NULL;
    ca_io_fd *e = loop->closed || !ca_io_fd_busy(loop, fd) ? NULL : &loop->io->fds[fd];
    if (e == NULL) {
        fn(w, loop, fd);
        return;
    }
    w->next = e->idle;
    e->idle = w;
}

void ca_io_close_when_idle(ca_loop *loop, int fd) {
    if (fd < 0) return;
    if (!ca_io_fd_busy(loop, fd)) {
        fd_close_now(loop, fd);
        return;
    }
    loop->io->fds[fd].close_pending = 1;
}

/* At loop close, with the backend gone and loop->io cleared: nothing can
 * use an fd any more, so what still waited runs now. */
static void fds_loop_closed(ca_loop *loop, ca_io_loop *io) {
    for (size_t fd = 0; fd < io->nfds; fd++) {
        ca_io_fd *e = &io->fds[fd];
        fd_run_idle_waits(loop, e, (int)fd); /* (a closed loop's waits add none, nor grow the table) */
        if (e->close_pending) close((int)fd);
        e->close_pending = 0;
    }
}

/** The record of `fd`, created on demand (NULL: out of memory or bad fd). */
static io_fdinfo *fdinfo_get(ca_loop *loop, int fd, bool create) {
    if (!create) {
        ca_io_fd *e = ca_io_fd_find(loop, fd);
        return e != NULL ? e->info : NULL;
    }
    ca_io_loop *io = ca_io_loop_get(loop);
    ca_io_fd *e = io != NULL && fd >= 0 ? ca_io_fd_get(io, fd) : NULL;
    if (e == NULL) return NULL;
    if (e->info == NULL) e->info = ca_calloc(1, sizeof *e->info);
    return e->info;
}

ca_error *ca_io_stash_take(ca_loop *loop, int fd, size_t max, ca_bytes **out) {
    *out = NULL;
    io_fdinfo *fi = fdinfo_get(loop, fd, false);
    if (CA_LIKELY(fi == NULL || fi->stash == NULL)) return NULL;
    ca_bytes *s = fi->stash;
    if (s->len <= max) {
        fi->stash = NULL;
        *out = s;
        return NULL;
    }
    ca_bytes *head = ca_bytes_from(s->data, max);
    if (head == NULL) return ca_error_new(&ca_MemoryError, NULL);
    memmove(s->data, s->data + max, s->len - max);
    s->len -= max;
    *out = head;
    return NULL;
}

void ca_io_stash_put(ca_loop *loop, int fd, const void *data, size_t len) {
    if (len == 0) return;
    io_fdinfo *fi = fdinfo_get(loop, fd, true);
    if (fi == NULL) return;
    if (fi->stash == NULL) {
        fi->stash = ca_bytes_from(data, len);
    } else {
        ca_decref(ca_bytes_append(fi->stash, data, len));
    }
    loop->io->race_kept++;
}

/** A receive completed with `len` bytes in `data` (room `cap`) while bytes
 *  an earlier, cancelled receive took wait in the stash: it was issued
 *  before that receive's completion was seen, so the stash's bytes came
 *  off the socket first. Puts the new bytes behind them and refills `data`
 *  from the front; returns its new length. (Out of memory the order is
 *  lost, not the bytes.) */
static size_t stash_first(ca_loop *loop, int fd, uint8_t *data, size_t len, size_t cap) {
    io_fdinfo *fi = fdinfo_get(loop, fd, false);
    if (CA_LIKELY(fi == NULL || fi->stash == NULL)) return len;
    ca_bytes *s = fi->stash;
    ca_error *err = ca_bytes_append(s, data, len);
    if (err != NULL) {
        ca_decref(err);
        return len;
    }
    size_t n = s->len < cap ? s->len : cap;
    memcpy(data, s->data, n);
    memmove(s->data, s->data + n, s->len - n);
    s->len -= n;
    if (s->len == 0) CA_CLEAR(fi->stash);
    return n;
}

static void accepted_put(ca_loop *loop, int listen_fd, int fd) {
    io_fdinfo *fi = fdinfo_get(loop, listen_fd, true);
    if (fi != NULL && fi->naccepted == fi->accepted_cap) {
        uint32_t cap = fi->accepted_cap ? fi->accepted_cap * 2 : 4;
        int *a = ca_realloc(fi->accepted, cap * sizeof *a);
        if (a != NULL) {
            fi->accepted = a;
            fi->accepted_cap = cap;
        }
    }
    if (fi == NULL || fi->naccepted == fi->accepted_cap) {
        close(fd); /* nowhere to keep it: the peer sees a reset, not a hang */
        return;
    }
    fi->accepted[fi->naccepted++] = fd;
    loop->io->race_kept++;
}

static int accepted_take(ca_loop *loop, int listen_fd) {
    io_fdinfo *fi = fdinfo_get(loop, listen_fd, false);
    if (CA_LIKELY(fi == NULL || fi->naccepted == 0)) return -1;
    int fd = fi->accepted[0];
    memmove(fi->accepted, fi->accepted + 1, (fi->naccepted - 1) * sizeof(int));
    fi->naccepted--;
    return fd;
}

/* MARK: - Requests: the futures of sock_* */

typedef enum req_kind {
    REQ_RECV = 0,
    REQ_RECV_INTO = 1,
    REQ_SENDALL = 2,
    REQ_ACCEPT = 3,
    REQ_CONNECT = 4,
} req_kind;

/**
 * A sock_* call: its future and its operation in one block. The future
 * comes first, so the request is the future callers hold. The operation
 * holds a reference while in flight, which keeps the buffer alive past a
 * cancellation until the kernel lets go of it.
 */
typedef struct io_request {
    ca_future fut;
    ca_io_op op;
    ca_bytes *buf;            /* RECV / RECV_INTO target, SENDALL data (owned) */
    size_t done;              /* SENDALL: bytes sent */
    uint32_t gen;             /* the fd's generation when the request started (ca_io_fd_gen) */
    uint8_t kind;             /* req_kind */
    struct sockaddr_storage addr; /* CONNECT: the address */
} io_request;

static bool io_request_cancel(ca_future *fut, const char *msg);
static void io_request_dealloc(ca_object *op);

/* A Future subclass whose cancel() also cancels the operation
 * (windows_events._OverlappedFuture plays the same part). */
static const ca_future_type io_request_type = {
    .ft_base = {"Future", sizeof(io_request), io_request_dealloc, &ca_FutureType},
    .ft_cancel = io_request_cancel,
};

static const char *const req_op_name[] = {"recv", "recv_into", "sendall", "accept", "connect"};

static io_request *io_request_new(ca_loop *loop, int fd, req_kind kind) {
    io_request *r = ca_small_alloc(sizeof(io_request));
    if (r == NULL) return NULL;
    ca_object_init(r, &io_request_type.ft_base);
    ca_future_init_head(&r->fut, loop);
    memset(&r->op, 0, sizeof r->op);
    r->op.fd = fd;
    r->buf = NULL;
    r->done = 0;
    r->gen = ca_io_fd_gen(loop, fd);
    r->kind = (uint8_t)kind;
    return r;
}

static void io_request_dealloc(ca_object *op) {
    io_request *r = (io_request *)op;
    if (CA_UNLIKELY(r->fut.fut_log_tb)) {
        ca_future_finalize(&r->fut);
        if (op->ob_refcnt > 0) return;
    }
    CA_CLEAR(r->buf);
    ca_future_clear_head(&r->fut);
    ca_small_free(r, sizeof(io_request));
}

static void io_request_submit(io_request *r) {
    ca_loop *loop = r->fut.fut_loop;
    ca_io_op *op = &r->op;
    switch ((req_kind)r->kind) {
    case REQ_RECV:
    case REQ_RECV_INTO:
        op->opcode = CA_IO_RECV;
        op->buf = r->buf->data;
        op->len = r->buf->cap > UINT32_MAX ? UINT32_MAX : (uint32_t)r->buf->cap;
        break;
    case REQ_SENDALL: {
        size_t left = r->buf->len - r->done;
        op->opcode = CA_IO_SEND;
        op->buf = r->buf->data + r->done;
        op->len = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        break;
    }
    case REQ_ACCEPT:
        op->opcode = CA_IO_ACCEPT;
        op->buf = NULL;
        break;
    case REQ_CONNECT:
        op->opcode = CA_IO_CONNECT;
        op->buf = &r->addr;
        break;
    }
    ca_io_submit(loop, op);
}

static void io_request_resubmit_cb(void *arg) {
    io_request *r = arg;
    if (r->fut.fut_state == CA_FUTURE_PENDING && !r->fut.fut_loop->closed) {
        ca_incref(r);
        io_request_submit(r);
    }
}

static bool io_request_cancel(ca_future *fut, const char *msg) {
    if (!ca_future_cancel_impl(fut, msg)) return false;
    io_request *r = (io_request *)fut;
    ca_io_cancel(fut->fut_loop, &r->op);
    return true;
}

/* The operation lost a race with cancel(): keep what it brought in for
 * the next operation on the fd, unless the fd was forgotten (closed
 * through the loop) since the operation started: the number may mean
 * another socket now, which must not get this one's bytes or connection.
 * Kept data always belongs to the fd's current generation (the records
 * holding it are freed when the fd is forgotten), so checking here is
 * enough. */
static void io_request_keep_race(io_request *r, int32_t res) {
    ca_loop *loop = r->fut.fut_loop;
    if (res <= 0 && !(r->kind == REQ_ACCEPT && res == 0)) return;
    if (CA_UNLIKELY(r->gen != ca_io_fd_gen(loop, r->op.fd))) {
        if (r->kind == REQ_ACCEPT) close(res); /* the peer sees a reset, not a hang */
        return;
    }
    switch ((req_kind)r->kind) {
    case REQ_RECV:
    case REQ_RECV_INTO:
        ca_io_stash_put(loop, r->op.fd, r->buf->data, (size_t)res);
        break;
    case REQ_ACCEPT:
        accepted_put(loop, r->op.fd, res);
        break;
    default:
        break; /* bytes sent or a connection made cannot be taken back */
    }
}

static void io_request_set_error(io_request *r, int32_t res) {
    ca_error *exc;
    if (r->kind == REQ_CONNECT) {
        char addr[160], what[192];
        ca_io_format_addr((struct sockaddr *)&r->addr, r->op.addrlen, addr, sizeof addr);
        snprintf(what, sizeof what, "Connect call failed %s", addr);
        exc = ca_error_from_io(-res, what);
    } else {
        exc = ca_error_from_io(-res, req_op_name[r->kind]);
    }
    ca_decref(ca_future_set_exception_impl(&r->fut, exc));
    ca_decref(exc);
}

static void io_request_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    io_request *r = CA_CONTAINER_OF(op, io_request, op);
    ca_loop *loop = r->fut.fut_loop;
    if (CA_UNLIKELY(r->fut.fut_state != CA_FUTURE_PENDING)) {
        if (!loop->closed) io_request_keep_race(r, res);
        else if (r->kind == REQ_ACCEPT && res >= 0) close(res);
        ca_decref(r);
        return;
    }
    if (CA_UNLIKELY(loop->closed)) {
        if (r->kind == REQ_ACCEPT && res >= 0) close(res);
        ca_decref(r);
        return;
    }
    if (res < 0 && r->kind != REQ_CONNECT && res != -ECANCELED) {
        /* retrying on a forgotten fd would act on whatever reuses the number */
        if (CA_UNLIKELY(r->gen != ca_io_fd_gen(loop, r->op.fd))) res = -EBADF;
        if (ca_io_transient(res)) {
            io_request_submit(r); /* keeps the operation's reference */
            return;
        }
        if (ca_io_short_of_memory(res)) {
            ca_error *err = ca_loop_call_later(loop, CA_IO_RETRY_DELAY_NS, io_request_resubmit_cb, r, NULL, NULL, NULL);
            if (err == NULL) return; /* the timer borrows the operation's reference */
            ca_decref(err);
        }
    }
    if (res < 0) {
        io_request_set_error(r, res);
        ca_decref(r);
        return;
    }
    if ((r->kind == REQ_RECV || r->kind == REQ_RECV_INTO) && CA_LIKELY(r->gen == ca_io_fd_gen(loop, r->op.fd)))
        res = (int32_t)stash_first(loop, r->op.fd, r->buf->data, (size_t)res, r->buf->cap);
    switch ((req_kind)r->kind) {
    case REQ_RECV: {
        ca_bytes *b = r->buf;
        r->buf = NULL;
        b->len = (size_t)res;
        ca_decref(ca_future_set_result_impl(&r->fut, ca_obj(b)));
        break;
    }
    case REQ_RECV_INTO:
        r->buf->len = (size_t)res;
        ca_decref(ca_future_set_result_impl(&r->fut, ca_int(res)));
        break;
    case REQ_SENDALL:
        r->done += (size_t)res;
        if (r->done < r->buf->len) {
            if (CA_UNLIKELY(r->gen != ca_io_fd_gen(loop, r->op.fd))) {
                io_request_set_error(r, -EBADF); /* the rest would go to whatever reuses the number */
                break;
            }
            io_request_submit(r);
            return;
        }
        ca_decref(ca_future_set_result_impl(&r->fut, ca_none()));
        break;
    case REQ_ACCEPT:
        ca_decref(ca_future_set_result_impl(&r->fut, ca_int(res)));
        break;
    case REQ_CONNECT:
        ca_decref(ca_future_set_result_impl(&r->fut, ca_none()));
        break;
    }
    ca_decref(r);
}

static ca_error *io_check(ca_loop *loop, int fd) {
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (fd < 0) return ca_error_format(&ca_ValueError, "Invalid file descriptor: %d", fd);
    if (ca_io_loop_get(loop) == NULL) return ca_error_new(&ca_MemoryError, NULL);
    return NULL;
}

/** Starts `r`'s operation (the operation takes its own reference) and
 *  hands the caller's reference out. */
static ca_error *io_request_start(io_request *r, ca_future **out) {
    r->op.complete = io_request_complete;
    ca_incref(r);
    io_request_submit(r);
    *out = &r->fut;
    return NULL;
}

/** A future already resolved with `value` (taken). */
static ca_error *io_done_future(ca_loop *loop, ca_value value, ca_future **out) {
    ca_future *f = ca_future_new(loop);
    if (f == NULL) {
        ca_value_clear(&value);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    ca_error *err = ca_future_set_result_impl(f, value);
    if (err != NULL) {
        ca_decref(f);
        return err;
    }
    *out = f;
    return NULL;
}

ca_error *ca_loop_sock_recv(ca_loop *loop, int fd, size_t nbytes, ca_future **out) {
    *out = NULL;
    ca_error *err = io_check(loop, fd);
    if (err != NULL) return err;
    if (nbytes == 0) return ca_error_new(&ca_ValueError, "nbytes must be positive");
    ca_bytes *kept;
    err = ca_io_stash_take(loop, fd, nbytes, &kept);
    if (err != NULL) return err;
    if (kept != NULL) return io_done_future(loop, ca_obj(kept), out);
    io_request *r = io_request_new(loop, fd, REQ_RECV);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    r->buf = ca_bytes_new(nbytes);
    if (r->buf == NULL) {
        ca_decref(r);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    return io_request_start(r, out);
}

ca_error *ca_loop_sock_recv_into(ca_loop *loop, int fd, ca_bytes *buf, ca_future **out) {
    *out = NULL;
    ca_error *err = io_check(loop, fd);
    if (err != NULL) return err;
    if (buf == NULL || buf->cap == 0) return ca_error_new(&ca_ValueError, "the buffer has no room");
    ca_bytes *kept;
    err = ca_io_stash_take(loop, fd, buf->cap, &kept);
    if (err != NULL) return err;
    if (kept != NULL) {
        memcpy(buf->data, kept->data, kept->len);
        buf->len = kept->len;
        ca_decref(kept);
        return io_done_future(loop, ca_int((int64_t)buf->len), out);
    }
    io_request *r = io_request_new(loop, fd, REQ_RECV_INTO);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    r->buf = ca_incref(buf);
    return io_request_start(r, out);
}

ca_error *ca_loop_sock_sendall(ca_loop *loop, int fd, ca_bytes *data, ca_future **out) {
    *out = NULL;
    ca_error *err = io_check(loop, fd);
    if (err != NULL) return err;
    if (data == NULL || data->len == 0) return io_done_future(loop, ca_none(), out);
    io_request *r = io_request_new(loop, fd, REQ_SENDALL);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    r->buf = ca_incref(data);
    return io_request_start(r, out);
}

ca_error *ca_loop_sock_sendall_copy(ca_loop *loop, int fd, const void *data, size_t len, ca_future **out) {
    *out = NULL;
    ca_bytes *b = ca_bytes_from(data, len);
    if (b == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_error *err = ca_loop_sock_sendall(loop, fd, b, out);
    ca_decref(b);
    return err;
}

ca_error *ca_loop_sock_accept(ca_loop *loop, int fd, ca_future **out) {
    *out = NULL;
    ca_error *err = io_check(loop, fd);
    if (err != NULL) return err;
    int kept = accepted_take(loop, fd);
    if (kept >= 0) return io_done_future(loop, ca_int(kept), out);
    io_request *r = io_request_new(loop, fd, REQ_ACCEPT);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    return io_request_start(r, out);
}

ca_error *ca_loop_sock_connect(ca_loop *loop, int fd, const struct sockaddr *addr, socklen_t addrlen,
                               ca_future **out) {
    *out = NULL;
    ca_error *err = io_check(loop, fd);
    if (err != NULL) return err;
    if (addr == NULL || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage))
        return ca_error_new(&ca_ValueError, "invalid socket address");
    io_request *r = io_request_new(loop, fd, REQ_CONNECT);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    memcpy(&r->addr, addr, addrlen);
    r->op.addrlen = addrlen;
    return io_request_start(r, out);
}

/* MARK: - Readers and writers */

static void watch_free(io_watch *w) {
    if (w->release != NULL) w->release(w->arg);
    ca_free(w);
}

/* Frees a forgotten watch once nothing refers to it any more. */
static void watch_maybe_free(io_watch *w) {
    if (w->dead && !w->scheduled && w->op.state == CA_IO_OP_IDLE) watch_free(w);
}

static void watch_arm(ca_loop *loop, io_watch *w) {
    if (w->op.state != CA_IO_OP_IDLE || !w->active || loop->closed) return;
    ca_io_submit(loop, &w->op);
}

static void watch_run(void *arg) {
    io_watch *w = arg;
    w->scheduled = 0;
    if (w->active && !w->dead) {
        w->fn(w->arg);
        /* the callback may have removed itself or closed the loop */
        if (w->active && !w->dead) watch_arm(w->op.loop, w);
    }
    watch_maybe_free(w);
}

static void watch_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    io_watch *w = CA_CONTAINER_OF(op, io_watch, op);
    ca_loop *loop = op->loop;
    if (w->dead || loop->closed) {
        watch_maybe_free(w);
        return;
    }
    if (!w->active) return;
    if (res == -ECANCELED) {
        watch_arm(loop, w); /* removed and added again while cancelling */
        return;
    }
    if (w->scheduled) return;
    ca_error *err = ca_loop_call_soon(loop, watch_run, w, NULL, NULL, NULL);
    if (err != NULL) {
        ca_loop_report_callback_error(loop, NULL, err);
        ca_decref(err);
        return;
    }
    w->scheduled = 1;
}

static ca_error *add_watch(ca_loop *loop, int fd, bool writer, ca_callback_fn fn, void *arg,
                           ca_release_fn release) {
    ca_error *err = io_check(loop, fd);
    io_fdinfo *fi = err == NULL ? fdinfo_get(loop, fd, true) : NULL;
    if (err == NULL && fi == NULL) err = ca_error_new(&ca_MemoryError, NULL);
    if (err != NULL) {
        if (release) release(arg);
        return err;
    }
    io_watch **slot = writer ? &fi->writer : &fi->reader;
    io_watch *w = *slot;
    if (w == NULL) {
        w = ca_calloc(1, sizeof *w);
        if (w == NULL) {
            if (release) release(arg);
            return ca_error_new(&ca_MemoryError, NULL);
        }
        w->op.fd = fd;
        w->op.opcode = CA_IO_POLL;
        w->op.poll_events = writer ? POLLOUT : POLLIN;
        w->op.complete = watch_complete;
        *slot = w;
    } else if (w->active && w->release != NULL) {
        w->release(w->arg); /* selector_events cancels the old handle */
    }
    w->fn = fn;
    w->arg = arg;
    w->release = release;
    w->active = 1;
    watch_arm(loop, w);
    return NULL;
}

static bool remove_watch(ca_loop *loop, int fd, bool writer) {
    io_fdinfo *fi = fdinfo_get(loop, fd, false);
    io_watch *w = fi ? (writer ? fi->writer : fi->reader) : NULL;
    if (w == NULL || !w->active) return false;
    w->active = 0;
    ca_release_fn release = w->release;
    void *arg = w->arg;
    w->release = NULL;
    w->arg = NULL;
    if (release != NULL) release(arg);
    ca_io_cancel(loop, &w->op);
    return true;
}

ca_error *ca_loop_add_reader(ca_loop *loop, int fd, ca_callback_fn fn, void *arg, ca_release_fn release) {
    return add_watch(loop, fd, false, fn, arg, release);
}

bool ca_loop_remove_reader(ca_loop *loop, int fd) { return remove_watch(loop, fd, false); }

ca_error *ca_loop_add_writer(ca_loop *loop, int fd, ca_callback_fn fn, void *arg, ca_release_fn release) {
    return add_watch(loop, fd, true, fn, arg, release);
}

bool ca_loop_remove_writer(ca_loop *loop, int fd) { return remove_watch(loop, fd, true); }

/* MARK: - Forgetting fds, closing */

/** Drops what the record of `fd` holds; watches still referenced by an
 *  operation or a handle are freed when those end — except when the loop
 *  is closed: its ready queue and the backend are gone already, so nothing
 *  refers to them any more. */
static void fdinfo_release(io_fdinfo *fi, bool loop_closed) {
    CA_CLEAR(fi->stash);
    for (uint32_t i = 0; i < fi->naccepted; i++) close(fi->accepted[i]);
    ca_free(fi->accepted);
    io_watch *ws[2] = {fi->reader, fi->writer};
    for (int i = 0; i < 2; i++) {
        io_watch *w = ws[i];
        if (w == NULL) continue;
        if (w->active && w->release != NULL) w->release(w->arg);
        w->release = NULL;
        w->active = 0;
        w->dead = 1;
        if (w->op.state != CA_IO_OP_IDLE && w->op.loop != NULL && w->op.loop->backend != NULL)
            w->op.loop->backend_ops->cancel(w->op.loop->backend, &w->op);
        if (loop_closed && w->op.state == CA_IO_OP_IDLE) w->scheduled = 0;
        watch_maybe_free(w);
    }
    ca_free(fi);
}

/* Drops the fd's record and starts a new generation of it (its number may
 * mean another file from now on). Out of memory the table stays short:
 * fds beyond it keep generation 0, as before generations existed. */
void ca_loop_forget_fd(ca_loop *loop, int fd) {
    ca_io_loop *io = loop->io;
    ca_io_fd *e = io != NULL && fd >= 0 ? ca_io_fd_get(io, fd) : NULL;
    if (e != NULL) {
        if (e->info != NULL) fdinfo_release(e->info, false);
        e->info = NULL;
        e->gen++;
    }
    if (loop->backend != NULL) loop->backend_ops->forget_fd(loop->backend, fd);
}

ca_error *ca_loop_sock_close(ca_loop *loop, int fd) {
    ca_loop_forget_fd(loop, fd);
    if (close(fd) < 0 && errno != EINTR) return ca_error_from_io(errno, "close");
    return NULL;
}

void ca_io_loop_free(ca_loop *loop) {
    ca_io_loop *io = loop->io;
    if (io == NULL) return;
    ca_executor_loop_closed(loop, io->executor);
    ca_signals_loop_closed(loop, io->signals);
    ca_transports_loop_closed(loop);
    loop->io = NULL;
    for (size_t fd = 0; fd < io->nfds; fd++)
        if (io->fds[fd].info != NULL) fdinfo_release(io->fds[fd].info, true);
    fds_loop_closed(loop, io);
    ca_free(io->fds);
    ca_free(io);
}

/* MARK: - Introspection and faults */

void ca_loop_io_stats(const ca_loop *loop, ca_io_stats *out) {
    ca_backend_stats bs = {0};
    if (loop->backend != NULL) loop->backend_ops->stats(loop->backend, &bs);
    *out = (ca_io_stats){
        .submitted = bs.submitted,
        .completions = bs.completions,
        .sq_full = bs.sq_full,
        .cq_overflow = bs.cq_overflow,
        .syscalls = bs.syscalls,
        .race_kept = loop->io ? loop->io->race_kept : 0,
        .faults = loop->io ? loop->io->faults : 0,
    };
}

size_t ca_loop_io_pending(const ca_loop *loop) { return loop->io_pending; }

void ca_loop_set_io_fault_hook(ca_loop *loop, ca_io_fault_fn fn, void *arg) {
    ca_io_loop *io = ca_io_loop_get(loop);
    if (io == NULL) return;
    io->fault = fn;
    io->fault_arg = arg;
}

/* MARK: - Addresses */

void ca_io_format_addr(const struct sockaddr *sa, socklen_t len, char *buf, size_t size) {
    char host[INET6_ADDRSTRLEN];
    if (size == 0) return;
    buf[0] = '\0';
    if (sa == NULL || len < sizeof(sa_family_t)) return;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "('%s', %u)", host, ntohs(in->sin_port));
        break;
    }
    case AF_INET6: {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "('%s', %u, %u, %u)", host, ntohs(in6->sin6_port), ntohl(in6->sin6_flowinfo),
                 in6->sin6_scope_id);
        break;
    }
    case AF_UNIX: {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        if (n > sizeof un->sun_path) n = sizeof un->sun_path;
        snprintf(buf, size, "'%.*s'", (int)strnlen(un->sun_path, n), un->sun_path);
        break;
    }
    default:
        snprintf(buf, size, "<family %d>", sa->sa_family);
        break;
    }
}

ca_error *ca_io_resolve_numeric(const char *host, uint16_t port, bool passive, struct sockaddr_storage *addrs,
                                socklen_t *lens, size_t cap, size_t *count) {
    *count = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | (passive ? AI_PASSIVE : 0)};
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host != NULL && host[0] != '\0' ? host : NULL, service, &hints, &res);
    if (rc != 0) {
        if (rc == EAI_NONAME)
            return ca_error_format(&ca_ValueError,
                                   "host %s is not a numeric address (names are not resolved on the loop thread)",
                                   host ? host : "(null)");
        return ca_error_from_gai(rc, errno);
    }
    /* IPv4 first, as a dual-stack bind of both families would otherwise
     * depend on the resolver's order */
    for (int pass = 0; pass < 2; pass++) {
        for (struct addrinfo *ai = res; ai != NULL && *count < cap; ai = ai->ai_next) {
            if ((pass == 0) != (ai->ai_family == AF_INET)) continue;
            if (ai->ai_addrlen > sizeof(struct sockaddr_storage)) continue;
            memcpy(&addrs[*count], ai->ai_addr, ai->ai_addrlen);
            lens[*count] = ai->ai_addrlen;
            (*count)++;
        }
    }
    freeaddrinfo(res);
    return NULL;
}
