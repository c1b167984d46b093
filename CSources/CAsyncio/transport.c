/*
 * transport.c — socket transports, servers and client connections, as
 * selector_events._SelectorSocketTransport, base_events.Server and
 * base_events.create_server / create_connection.
 *
 * Where we differ on purpose: reads and writes are completion-based. A
 * receive is always in flight while reading — on io_uring one multishot
 * receive into provided buffers, else single-shot into a buffer the
 * transport owns or the BufferedProtocol's — and completions queue what
 * they brought for a read_ready handle that hands it to the protocol in
 * order (what arrives while reading is paused waits there, never lost);
 * write() copies into a buffer that is handed to the kernel whole while
 * later writes accumulate in a second one (no write() ever waits for the
 * socket, and no syscall is made inline).
 * Protocol callbacks, the exception handler and connection_lost always run
 * from the ready queue, never inside the backend's poll.
 */
#include "io_internal.h"
#include "sync_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Read buffers start small and double while reads fill them (as SwiftNIO's
 * adaptive allocator does), so a thousand idle connections hold 16 MiB,
 * not 256. */
#define READ_SIZE_MIN (16 * 1024)
#define READ_SIZE_MAX (256 * 1024)
#define WRITE_HIGH_DEFAULT (64 * 1024)          /* FlowControlMixin's default */
#define LOG_THRESHOLD_FOR_CONNLOST_WRITES 5     /* constants.py */
#define ACCEPT_RETRY_DELAY_NS (1000LL * 1000 * 1000) /* constants.ACCEPT_RETRY_DELAY */
#define SERVER_MAX_LISTENERS 8
#define CONNECT_MAX_ADDRS 8

/* MARK: - Structures */

/** Bytes a read brought in: in the transport's own buffer, the
 *  BufferedProtocol's, or a buffer the backend provided (to hand back). */
typedef struct rchunk {
    uint8_t *data;
    uint32_t len;
    uint16_t bid;
    uint8_t provided;
} rchunk;

/** A write buffer: data[off, len) is still to be sent. */
typedef struct wbuf {
    uint8_t *data;
    size_t len;
    size_t off;
    size_t cap;
} wbuf;

struct ca_transport {
    ca_object ob_base;
    ca_loop *loop;              /* strong */
    ca_protocol *protocol;      /* owned: released after connection_lost */
    ca_server *server;          /* strong while attached */
    ca_transport *srv_next;     /* the server's list of connections */
    ca_transport *srv_prev;
    ca_transport *io_next;      /* the loop's list of open transports */
    ca_transport *io_prev;
    uint8_t io_listed;
    ca_future *waiter;          /* create_connection: resolved after connection_made (strong) */
    int fd;
    /* reading */
    ca_io_op rop;
    uint8_t *rbuf;              /* Protocol, single-shot: the transport's buffer */
    size_t rbuf_cap;
    rchunk *rq;                 /* received, not yet delivered, oldest first (a ring) */
    uint32_t rq_head;
    uint32_t rq_len;
    uint32_t rq_cap;            /* a power of two */
    uint32_t rq_own;            /* queued chunks in our own (or the protocol's) buffer */
    int32_t rfinal;             /* EOF (0) or -errno, delivered after the chunks */
    uint8_t rfinal_set;
    uint8_t rready_scheduled;   /* a read_ready handle is queued */
    uint8_t multishot;          /* reads complete in the backend's provided buffers */
    uint8_t rfallback;          /* the next read is single-shot (the buffers ran out) */
    uint8_t rshort;             /* the last read stopped short: poll before the next */
    uint8_t reading_paused;
    uint8_t eof_seen;
    /* writing */
    ca_io_op wop;
    wbuf cur;                   /* what the send in flight reads from */
    wbuf next;                  /* writes made meanwhile */
    size_t high_water;
    size_t low_water;
    uint8_t protocol_paused;
    uint8_t eof_requested;      /* write_eof() called */
    uint8_t eof_done;           /* shutdown(SHUT_WR) done */
    /* lifecycle */
    uint8_t started;            /* connection_made was called */
    uint8_t closing;
    uint8_t lost;               /* _call_connection_lost ran */
    uint8_t lost_scheduled;
    int conn_lost;              /* asyncio's _conn_lost counter */
    ca_error *lost_exc;         /* what connection_lost will receive */
    ca_error *write_exc;        /* a write failure waiting to be reported */
};

typedef struct listener {
    ca_io_op op;
    ca_server *server;          /* borrowed: the listener lives inside it */
    int fd;
} listener;

struct ca_server {
    ca_object ob_base;
    ca_loop *loop;                  /* strong */
    ca_protocol_factory factory;
    void *factory_arg;
    ca_release_fn factory_arg_release;
    listener listeners[SERVER_MAX_LISTENERS];
    size_t nlisteners;
    int backlog;
    bool serving;
    bool closed;
    bool accept_paused;             /* out of fds: waiting ACCEPT_RETRY_DELAY */
    size_t nconn;
    ca_transport *conns;            /* borrowed list heads */
    ca_waiters waiters;             /* wait_closed() futures */
    ca_handle *retry_timer;
    char *unix_path;                /* owned: unlinked on close */
    uint16_t port;
};

static void transport_dealloc(ca_object *op);
static void server_dealloc(ca_object *op);
const ca_type ca_TransportType = {"_SelectorSocketTransport", sizeof(ca_transport), transport_dealloc, NULL};
const ca_type ca_ServerType = {"Server", sizeof(ca_server), server_dealloc, NULL};

static void rq_clear(ca_transport *t);

/* MARK: - The loop's list of open transports */

static void transport_list_add(ca_transport *t) {
    ca_io_loop *io = ca_io_loop_get(t->loop);
    if (io == NULL) return;
    t->io_prev = NULL;
    t->io_next = io->transports;
    if (io->transports != NULL) io->transports->io_prev = t;
    io->transports = t;
    t->io_listed = 1;
}

static void transport_list_remove(ca_transport *t) {
    if (!t->io_listed) return;
    ca_io_loop *io = t->loop->io;
    if (t->io_prev != NULL) t->io_prev->io_next = t->io_next;
    else if (io != NULL) io->transports = t->io_next;
    if (t->io_next != NULL) t->io_next->io_prev = t->io_prev;
    t->io_next = t->io_prev = NULL;
    t->io_listed = 0;
}

/* MARK: - Protocol calls */

static inline const ca_protocol_ops *proto_ops(const ca_transport *t) {
    return t->protocol != NULL ? t->protocol->ops : NULL;
}

static void protocol_release(ca_protocol *p) {
    if (p != NULL && p->ops != NULL && p->ops->release != NULL) p->ops->release(p);
}

static void report(ca_loop *loop, const char *message, ca_error *exc) {
    ca_exception_context c = {.message = message, .exception = exc};
    ca_loop_call_exception_handler(loop, &c);
}

/* MARK: - Write buffers */

static ca_error *wbuf_reserve(wbuf *b, size_t extra) {
    size_t need = b->len + extra;
    if (need <= b->cap) return NULL;
    if (b->off > 0 && need - b->off <= b->cap) {
        /* reclaim the sent prefix rather than grow */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        return NULL;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *d = ca_small_alloc(cap);
    if (d == NULL) return ca_error_new(&ca_MemoryError, NULL);
    if (b->len > 0) memcpy(d, b->data, b->len);
    if (b->data != NULL) ca_small_free(b->data, b->cap);
    b->data = d;
    b->cap = cap;
    return NULL;
}

static void wbuf_free(wbuf *b) {
    if (b->data != NULL) ca_small_free(b->data, b->cap);
    *b = (wbuf){0};
}

static inline size_t wbuf_pending(const wbuf *b) { return b->len - b->off; }

/* MARK: - Closing */

/* The kernel may still hold a cancelled read on the fd: it is closed when
 * that ends. */
static void transport_close_fd(ca_transport *t) {
    if (t->fd < 0) return;
    ca_io_close_when_idle(t->loop, t->fd);
    t->fd = -1;
}

/* _call_connection_lost. */
static void transport_call_connection_lost(void *arg) {
    ca_transport *t = arg;
    if (t->lost) return;
    t->lost = 1;
    transport_list_remove(t);
    ca_error *exc = t->lost_exc;
    t->lost_exc = NULL;
    const ca_protocol_ops *ops = proto_ops(t);
    if (t->started && ops != NULL && ops->connection_lost != NULL) {
        ca_error *err = ops->connection_lost(t->protocol, exc);
        if (err != NULL) {
            report(t->loop, "Exception in protocol.connection_lost()", err);
            ca_decref(err);
        }
    }
    if (t->waiter != NULL && t->waiter->fut_state == CA_FUTURE_PENDING) {
        /* lost before connection_made resolved create_connection */
        ca_error *e = exc ? ca_incref(exc) : ca_error_new(&ca_ConnectionResetError, "Connection lost");
        ca_decref(ca_future_set_exception_impl(t->waiter, e));
        ca_decref(e);
    }
    CA_CLEAR(t->waiter);
    ca_decref(exc);
    transport_close_fd(t);
    ca_protocol *p = t->protocol;
    t->protocol = NULL;
    protocol_release(p);
    ca_server *s = t->server;
    if (s != NULL) {
        t->server = NULL;
        ca_server_detach(s, t);
        ca_decref(s);
    }
    ca_decref(t); /* the transport's own reference, held while open */
}

static void transport_schedule_connection_lost(ca_transport *t, ca_error *exc) {
    if (t->lost_scheduled) return;
    t->lost_scheduled = 1;
    ca_incref(exc);
    CA_CLEAR(t->lost_exc);
    t->lost_exc = exc;
    ca_error *err = ca_loop_call_soon(t->loop, transport_call_connection_lost, ca_incref(t), ca_release_object, NULL, NULL);
    if (err != NULL) {
        /* the loop is closed: nobody is listening, but the fd must go */
        ca_decref(err);
        transport_call_connection_lost(ca_incref(t));
        ca_decref(t);
    }
}

/* _force_close(exc) */
static void transport_force_close(ca_transport *t, ca_error *exc) {
    if (t->conn_lost) return;
    if (wbuf_pending(&t->cur) > 0 || t->next.len > 0) {
        t->next.len = t->next.off = 0;
        t->cur.len = t->cur.off = 0;
        ca_io_cancel(t->loop, &t->wop);
    }
    if (!t->closing) {
        t->closing = 1;
        ca_io_cancel(t->loop, &t->rop);
    }
    rq_clear(t);
    t->conn_lost++;
    transport_schedule_connection_lost(t, exc);
}

/* _fatal_error(exc, message): resets, broken pipes and aborts are the
 * peer's doing and only logged in debug mode; the rest reach the handler. */
static void transport_fatal_error(ca_transport *t, ca_error *exc, const char *message) {
    if (ca_error_matches(exc, &ca_BrokenPipeError) || ca_error_matches(exc, &ca_ConnectionResetError) ||
        ca_error_matches(exc, &ca_ConnectionAbortedError)) {
        if (t->loop->debug) ca_loop_log(t->loop, CA_LOG_DEBUG, "%s: %s", message, ca_error_message(exc));
    } else {
        ca_exception_context c = {.message = message, .exception = exc};
        ca_loop_call_exception_handler(t->loop, &c);
    }
    transport_force_close(t, exc);
}

void ca_transport_close(ca_transport *t) {
    if (t->closing) return;
    t->closing = 1;
    ca_io_cancel(t->loop, &t->rop);
    rq_clear(t);
    if (wbuf_pending(&t->cur) == 0 && t->next.len == 0 && t->wop.state == CA_IO_OP_IDLE) {
        t->conn_lost++;
        transport_schedule_connection_lost(t, NULL);
    }
}

void ca_transport_abort(ca_transport *t) { transport_force_close(t, NULL); }

bool ca_transport_is_closing(const ca_transport *t) { return t->closing; }

/* MARK: - Reading */

static void transport_read_arm(ca_transport *t);
static void transport_read_ready(void *arg);

static void transport_read_retry_cb(void *arg) { transport_read_arm(arg); }

static void transport_schedule_read_ready(ca_transport *t) {
    if (t->rready_scheduled) return;
    ca_error *err = ca_loop_call_soon(t->loop, transport_read_ready, ca_incref(t), ca_release_object, NULL, NULL);
    if (err != NULL) {
        ca_decref(err);
        return;
    }
    t->rready_scheduled = 1;
}

/* Hands a provided buffer back, unless the backend is gone already. */
static void rchunk_release(ca_transport *t, const rchunk *c) {
    if (c->provided && t->loop->backend != NULL) t->loop->backend_ops->buffer_return(t->loop->backend, c->bid);
}

/* Drops what was received and not delivered (closing). */
static void rq_clear(ca_transport *t) {
    while (t->rq_len > 0) {
        rchunk_release(t, &t->rq[t->rq_head]);
        t->rq_head = (t->rq_head + 1) & (t->rq_cap - 1);
        t->rq_len--;
    }
    t->rq_head = 0;
    t->rq_own = 0;
}

static bool rq_push(ca_transport *t, rchunk c) {
    if (CA_UNLIKELY(t->rq_len == t->rq_cap)) {
        uint32_t cap = t->rq_cap ? t->rq_cap * 2 : 4;
        rchunk *n = ca_small_alloc(cap * sizeof *n);
        if (n == NULL) return false;
        for (uint32_t i = 0; i < t->rq_len; i++) n[i] = t->rq[(t->rq_head + i) & (t->rq_cap - 1)];
        if (t->rq != NULL) ca_small_free(t->rq, t->rq_cap * sizeof *t->rq);
        t->rq = n;
        t->rq_cap = cap;
        t->rq_head = 0;
    }
    t->rq[(t->rq_head + t->rq_len) & (t->rq_cap - 1)] = c;
    t->rq_len++;
    return true;
}

/* Whether a read is wanted now (nothing keeps the transport from reading). */
static inline bool transport_wants_read(const ca_transport *t) {
    return !t->reading_paused && !t->closing && !t->eof_seen && !t->rfinal_set && t->fd >= 0 && !t->loop->closed;
}

static void transport_read_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    ca_transport *t = CA_CONTAINER_OF(op, ca_transport, rop);
    bool more = (cflags & CA_IO_CQE_MORE) != 0;
    rchunk chunk = {op->cqe_buf, 0, op->cqe_bid, op->cqe_buf != NULL};
    if (CA_UNLIKELY(t->loop->closed || t->closing || t->lost)) {
        rchunk_release(t, &chunk);
        if (!more) ca_decref(t);
        return;
    }
    if (res > 0) {
        if (!chunk.provided) chunk.data = op->buf;
        chunk.len = (uint32_t)res;
        if (CA_UNLIKELY(!rq_push(t, chunk))) {
            rchunk_release(t, &chunk);
            t->rfinal = -ENOMEM;
            t->rfinal_set = 1;
        } else if (!chunk.provided) {
            t->rq_own++;
            t->rshort = (size_t)res < op->len;
        }
    } else if (res == 0) {
        rchunk_release(t, &chunk);
        t->rfinal = 0;
        t->rfinal_set = 1;
    } else if (res == -ENOBUFS && (op->flags & CA_IO_F_BUF_SELECT)) {
        /* the provided buffers ran out: one read into our own buffer */
        t->rfallback = 1;
    } else if (res == -ECANCELED || ca_io_transient(res)) {
        /* cancelled by pause_reading, or a spurious failure: nothing to deliver */
    } else if (ca_io_short_of_memory(res)) {
        ca_error *err = ca_loop_call_later(t->loop, CA_IO_RETRY_DELAY_NS, transport_read_retry_cb, ca_incref(t),
                                           ca_release_object, NULL, NULL);
        ca_decref(err);
        ca_decref(t);
        return;
    } else {
        t->rfinal = res;
        t->rfinal_set = 1;
    }
    /* paused while the read was in flight: what came is kept until
     * resume_reading */
    if ((t->rq_len > 0 || t->rfinal_set) && !t->reading_paused) transport_schedule_read_ready(t);
    if (more) return;
    /* The next read starts at once unless it would reuse a buffer whose
     * bytes are not delivered yet (read_ready starts it then). */
    if (transport_wants_read(t) && t->rq_own == 0) transport_read_arm(t);
    ca_decref(t);
}

/* Starts the next read: multishot into provided buffers where the backend
 * has them (Protocol only), else single-shot into the transport's buffer or
 * the BufferedProtocol's. */
static void transport_read_arm(ca_transport *t) {
    if (t->rop.state != CA_IO_OP_IDLE || !transport_wants_read(t)) return;
    const ca_protocol_ops *ops = proto_ops(t);
    ca_io_op *op = &t->rop;
    bool buffered = ops != NULL && ops->get_buffer != NULL;
    if (t->multishot && !t->rfallback) {
        op->opcode = CA_IO_RECV;
        op->flags = CA_IO_F_BUF_SELECT;
        op->buf = NULL;
        op->len = 0;
        if (CA_UNLIKELY(t->loop->io != NULL && t->loop->io->fault != NULL) && t->rq_own == 0 &&
            (t->rbuf != NULL || (t->rbuf = ca_small_alloc(READ_SIZE_MIN)) != NULL)) {
            /* a fault that shortens reads needs a buffer of ours to read into */
            if (t->rbuf_cap == 0) t->rbuf_cap = READ_SIZE_MIN;
            op->buf = t->rbuf;
            op->len = (uint32_t)t->rbuf_cap;
        }
    } else {
        if (t->rq_own > 0) return; /* the buffer still holds undelivered bytes */
        void *buf;
        size_t len;
        if (buffered) {
            buf = NULL;
            len = 0;
            ca_error *err = ops->get_buffer(t->protocol, t->rbuf_cap ? t->rbuf_cap : READ_SIZE_MIN, &buf, &len);
            if (err == NULL && (buf == NULL || len == 0))
                err = ca_error_new(&ca_RuntimeError, "get_buffer() returned an empty buffer");
            if (err != NULL) {
                transport_fatal_error(t, err, "Fatal error: protocol.get_buffer() call failed.");
                ca_decref(err);
                return;
            }
        } else {
            if (t->rbuf == NULL || (!t->rshort && t->rbuf_cap < READ_SIZE_MAX && op->len == t->rbuf_cap)) {
                /* the last read filled the buffer: a bigger one next time */
                size_t cap = t->rbuf == NULL ? READ_SIZE_MIN : t->rbuf_cap * 2;
                uint8_t *nb = ca_small_alloc(cap);
                if (nb == NULL && t->rbuf == NULL) {
                    ca_error *err = ca_error_new(&ca_MemoryError, NULL);
                    transport_fatal_error(t, err, "Fatal read error on socket transport");
                    ca_decref(err);
                    return;
                }
                if (nb != NULL) {
                    if (t->rbuf != NULL) ca_small_free(t->rbuf, t->rbuf_cap);
                    t->rbuf = nb;
                    t->rbuf_cap = cap;
                }
            }
            buf = t->rbuf;
            len = t->rbuf_cap;
        }
        op->opcode = CA_IO_RECV;
        op->buf = buf;
        op->len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
        op->flags = t->rshort ? CA_IO_F_POLL_FIRST : 0;
        t->rfallback = 0;
    }
    ca_incref(t);
    ca_io_submit(t->loop, op);
}

/* _read_ready: delivers what was received, in order, on the ready queue;
 * stops when the protocol pauses reading or closes the transport. */
static void transport_read_ready(void *arg) {
    ca_transport *t = arg;
    t->rready_scheduled = 0;
    const ca_protocol_ops *ops = proto_ops(t);
    bool buffered = ops != NULL && ops->get_buffer != NULL;
    while (t->rq_len > 0 && !t->reading_paused && !t->closing && !t->lost) {
        rchunk c = t->rq[t->rq_head];
        t->rq_head = (t->rq_head + 1) & (t->rq_cap - 1);
        t->rq_len--;
        if (!c.provided) t->rq_own--;
        ca_error *err = NULL;
        if (buffered) {
            if (ops->buffer_updated != NULL) err = ops->buffer_updated(t->protocol, c.len);
        } else if (ops != NULL && ops->data_received != NULL) {
            err = ops->data_received(t->protocol, c.data, c.len);
        }
        rchunk_release(t, &c);
        if (err != NULL) {
            transport_fatal_error(t, err, buffered ? "Fatal error: protocol.buffer_updated() call failed."
                                                   : "Fatal error: protocol.data_received() call failed.");
            ca_decref(err);
            return;
        }
        ops = proto_ops(t); /* set_protocol may have swapped it */
        buffered = ops != NULL && ops->get_buffer != NULL;
    }
    if (t->closing || t->lost || t->reading_paused) return;
    if (t->rq_len == 0 && t->rfinal_set && !t->eof_seen) {
        int32_t res = t->rfinal;
        if (res == 0) {
            /* _read_ready__on_eof */
            t->eof_seen = 1;
            bool keep_open = false;
            if (ops != NULL && ops->eof_received != NULL) {
                ca_error *err = ops->eof_received(t->protocol, &keep_open);
                if (err != NULL) {
                    transport_fatal_error(t, err, "Fatal error: protocol.eof_received() call failed.");
                    ca_decref(err);
                    return;
                }
            }
            if (!keep_open) ca_transport_close(t);
            return;
        }
        t->eof_seen = 1;
        ca_error *exc = ca_error_from_io(-res, "recv");
        transport_fatal_error(t, exc, "Fatal read error on socket transport");
        ca_decref(exc);
        return;
    }
    transport_read_arm(t);
}

void ca_transport_pause_reading(ca_transport *t) {
    if (t->closing || t->reading_paused) return;
    t->reading_paused = 1;
    ca_io_cancel(t->loop, &t->rop);
}

void ca_transport_resume_reading(ca_transport *t) {
    if (t->closing || !t->reading_paused) return;
    t->reading_paused = 0;
    if (t->rq_len > 0 || t->rfinal_set) transport_schedule_read_ready(t);
    else if (t->started) transport_read_arm(t);
}

bool ca_transport_is_reading(const ca_transport *t) { return !t->reading_paused && !t->closing; }

/* MARK: - Writing */

static void transport_protocol_cb(void *arg, bool pause) {
    ca_transport *t = arg;
    const ca_protocol_ops *ops = proto_ops(t);
    if (ops == NULL || t->lost) return;
    ca_error *(*fn)(ca_protocol *) = pause ? ops->pause_writing : ops->resume_writing;
    if (fn == NULL) return;
    ca_error *err = fn(t->protocol);
    if (err != NULL) {
        report(t->loop, pause ? "protocol.pause_writing() failed" : "protocol.resume_writing() failed", err);
        ca_decref(err);
    }
}

static void transport_resume_writing_cb(void *arg) { transport_protocol_cb(arg, false); }

/* _maybe_pause_protocol: called from write(), already on the ready queue,
 * so the protocol hears at once as in asyncio. */
static void transport_maybe_pause_protocol(ca_transport *t) {
    size_t size = ca_transport_get_write_buffer_size(t);
    if (size <= t->high_water || t->protocol_paused) return;
    t->protocol_paused = 1;
    transport_protocol_cb(t, true);
}

/* _maybe_resume_protocol: from a send completion, so scheduled. */
static void transport_maybe_resume_protocol(ca_transport *t) {
    if (!t->protocol_paused || ca_transport_get_write_buffer_size(t) > t->low_water) return;
    t->protocol_paused = 0;
    ca_error *err = ca_loop_call_soon(t->loop, transport_resume_writing_cb, ca_incref(t), ca_release_object, NULL, NULL);
    ca_decref(err);
}

static void transport_send_submit(ca_transport *t) {
    size_t left = wbuf_pending(&t->cur);
    ca_io_op *op = &t->wop;
    op->opcode = CA_IO_SEND;
    op->buf = t->cur.data + t->cur.off;
    op->len = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    op->flags = 0;
    ca_incref(t);
    ca_io_submit(t->loop, op);
}

static void transport_write_error_cb(void *arg) {
    ca_transport *t = arg;
    ca_error *exc = t->write_exc;
    t->write_exc = NULL;
    if (exc == NULL) return;
    transport_fatal_error(t, exc, "Fatal write error on socket transport");
    ca_decref(exc);
}

static void transport_send_retry_cb(void *arg) {
    ca_transport *t = arg;
    if (t->wop.state == CA_IO_OP_IDLE && wbuf_pending(&t->cur) > 0 && !t->loop->closed) transport_send_submit(t);
}

/* The buffer went out: shut down for write_eof, or finish a close(). */
static void transport_write_drained(ca_transport *t) {
    if (t->closing) {
        t->conn_lost++;
        transport_schedule_connection_lost(t, NULL);
    } else if (t->eof_requested && !t->eof_done) {
        t->eof_done = 1;
        shutdown(t->fd, SHUT_WR);
    }
}

static void transport_send_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    ca_transport *t = CA_CONTAINER_OF(op, ca_transport, wop);
    if (CA_UNLIKELY(t->loop->closed || t->lost || t->conn_lost)) {
        ca_decref(t);
        return;
    }
    if (CA_UNLIKELY(res < 0)) {
        if (ca_io_transient(res) || res == -ECANCELED) {
            transport_send_submit(t);
        } else if (ca_io_short_of_memory(res)) {
            ca_error *err = ca_loop_call_later(t->loop, CA_IO_RETRY_DELAY_NS, transport_send_retry_cb, ca_incref(t),
                                               ca_release_object, NULL, NULL);
            ca_decref(err);
        } else {
            t->write_exc = ca_error_from_io(-res, "send");
            ca_error *err = ca_loop_call_soon(t->loop, transport_write_error_cb, ca_incref(t), ca_release_object, NULL, NULL);
            ca_decref(err);
        }
        ca_decref(t);
        return;
    }
    t->cur.off += (size_t)res;
    if (wbuf_pending(&t->cur) > 0) {
        transport_send_submit(t); /* a short send: the rest goes next */
    } else {
        /* swap: what accumulated meanwhile goes out, the sent buffer is reused */
        wbuf sent = t->cur;
        sent.len = sent.off = 0;
        t->cur = t->next;
        t->next = sent;
        if (wbuf_pending(&t->cur) > 0) transport_send_submit(t);
        else transport_write_drained(t);
    }
    transport_maybe_resume_protocol(t);
    ca_decref(t);
}

ca_error *ca_transport_write(ca_transport *t, const void *data, size_t len) {
    if (len == 0) return NULL;
    if (t->eof_requested) return ca_error_new(&ca_RuntimeError, "Cannot call write() after write_eof()");
    if (t->conn_lost || t->fd < 0) {
        if (t->conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES)
            ca_loop_log(t->loop, CA_LOG_WARNING, "socket.send() raised exception.");
        t->conn_lost++;
        return NULL;
    }
    if (t->wop.state == CA_IO_OP_IDLE && wbuf_pending(&t->cur) == 0) {
        /* nothing in flight: this buffer goes to the kernel now */
        t->cur.len = t->cur.off = 0;
        ca_error *err = wbuf_reserve(&t->cur, len);
        if (err != NULL) return err;
        memcpy(t->cur.data, data, len);
        t->cur.len = len;
        transport_send_submit(t);
    } else {
        ca_error *err = wbuf_reserve(&t->next, len);
        if (err != NULL) return err;
        memcpy(t->next.data + t->next.len, data, len);
        t->next.len += len;
    }
    transport_maybe_pause_protocol(t);
    return NULL;
}

ca_error *ca_transport_writelines(ca_transport *t, const struct iovec *iov, int iovcnt) {
    for (int i = 0; i < iovcnt; i++) {
        ca_error *err = ca_transport_write(t, iov[i].iov_base, iov[i].iov_len);
        if (err != NULL) return err;
    }
    return NULL;
}

ca_error *ca_transport_write_eof(ca_transport *t) {
    if (t->closing || t->eof_requested) return NULL;
    t->eof_requested = 1;
    if (wbuf_pending(&t->cur) == 0 && t->next.len == 0 && t->wop.state == CA_IO_OP_IDLE && t->fd >= 0) {
        t->eof_done = 1;
        if (shutdown(t->fd, SHUT_WR) < 0) return ca_error_from_io(errno, "shutdown");
    }
    return NULL;
}

bool ca_transport_can_write_eof(const ca_transport *t) { return true; }

ca_error *ca_transport_set_write_buffer_limits(ca_transport *t, int64_t high, int64_t low) {
    /* FlowControlMixin._set_write_buffer_limits, with Python's unbounded
     * 4 * low saturated and its floor division kept for negative highs. */
    if (high == CA_WRITE_LIMIT_DEFAULT) {
        if (low == CA_WRITE_LIMIT_DEFAULT) high = WRITE_HIGH_DEFAULT;
        else if (low > INT64_MAX / 4) high = INT64_MAX;
        else if (low < INT64_MIN / 4) high = INT64_MIN;
        else high = 4 * low;
    }
    if (low == CA_WRITE_LIMIT_DEFAULT) low = high >= 0 ? high / 4 : -((-(high + 1)) / 4) - 1;
    if (!(high >= low && low >= 0))
        return ca_error_format(&ca_ValueError, "high (%lld) must be >= low (%lld) must be >= 0", (long long)high,
                               (long long)low);
    t->high_water = (size_t)high;
    t->low_water = (size_t)low;
    transport_maybe_pause_protocol(t);
    return NULL;
}

void ca_transport_get_write_buffer_limits(const ca_transport *t, size_t *low, size_t *high) {
    *low = t->low_water;
    *high = t->high_water;
}

size_t ca_transport_get_write_buffer_size(const ca_transport *t) { return wbuf_pending(&t->cur) + t->next.len; }

/* MARK: - Accessors */

int ca_transport_get_fd(const ca_transport *t) { return t->fd; }

bool ca_transport_get_peername(const ca_transport *t, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return t->fd >= 0 && getpeername(t->fd, (struct sockaddr *)addr, len) == 0;
}

bool ca_transport_get_sockname(const ca_transport *t, struct sockaddr_storage *addr, socklen_t *len) {
    *len = sizeof *addr;
    return t->fd >= 0 && getsockname(t->fd, (struct sockaddr *)addr, len) == 0;
}

ca_protocol *ca_transport_get_protocol(const ca_transport *t) { return t->protocol; }

void ca_transport_set_protocol(ca_transport *t, ca_protocol *p) {
    ca_protocol *old = t->protocol;
    t->protocol = p;
    if (old != p) protocol_release(old);
}

ca_loop *ca_transport_get_loop(const ca_transport *t) { return t->loop; }

void ca_transports_loop_closed(ca_loop *loop) {
    ca_io_loop *io = loop->io;
    while (io != NULL && io->transports != NULL) {
        ca_transport *t = ca_incref(io->transports);
        transport_list_remove(t);
        t->lost = 1;
        t->closing = 1;
        transport_close_fd(t);
        t->rq_len = 0; /* the backend and its buffers are gone */
        ca_protocol *p = t->protocol;
        t->protocol = NULL;
        protocol_release(p);
        CA_CLEAR(t->waiter);
        if (t->server != NULL) {
            ca_server *s = t->server;
            t->server = NULL;
            ca_server_detach(s, t);
            ca_decref(s);
        }
        ca_decref(t); /* the self reference of an open transport */
        ca_decref(t);
    }
}

/* MARK: - Creation */

/* Runs first on the ready queue: connection_made, then the waiter, then
 * the first read (selector_events schedules the same three steps). */
static void transport_start(void *arg) {
    ca_transport *t = arg;
    if (t->lost) return;
    t->started = 1;
    const ca_protocol_ops *ops = proto_ops(t);
    if (ops != NULL && ops->connection_made != NULL) {
        ca_error *err = ops->connection_made(t->protocol, t);
        if (err != NULL) {
            transport_fatal_error(t, err, "Fatal error: protocol.connection_made() call failed.");
            ca_decref(err);
            return;
        }
    }
    /* multishot reads for a Protocol where the backend provides buffers */
    ops = proto_ops(t);
    t->multishot = ops != NULL && ops->get_buffer == NULL && t->loop->backend != NULL &&
                   t->loop->backend_ops->provided_buffers(t->loop->backend) > 0;
    if (t->waiter != NULL) {
        ca_future *w = t->waiter;
        t->waiter = NULL;
        if (w->fut_state == CA_FUTURE_PENDING) {
            ca_decref(ca_future_set_result_impl(w, ca_obj(ca_incref(t))));
        } else {
            ca_transport_close(t); /* create_connection was cancelled meanwhile */
        }
        ca_decref(w);
    }
    transport_read_arm(t);
}

static void transport_dealloc(ca_object *op) {
    ca_transport *t = (ca_transport *)op;
    transport_list_remove(t);
    if (t->fd >= 0) ca_io_close_when_idle(t->loop, t->fd);
    protocol_release(t->protocol);
    if (t->rbuf != NULL) ca_small_free(t->rbuf, t->rbuf_cap);
    if (t->rq != NULL) {
        if (t->loop != NULL && t->loop->backend != NULL) rq_clear(t);
        ca_small_free(t->rq, t->rq_cap * sizeof *t->rq);
    }
    wbuf_free(&t->cur);
    wbuf_free(&t->next);
    ca_decref(t->lost_exc);
    ca_decref(t->write_exc);
    ca_decref(t->waiter);
    ca_decref(t->server);
    ca_decref(t->loop);
    ca_small_free(t, sizeof *t);
}

ca_error *ca_transport_new_socket(ca_loop *loop, int fd, ca_protocol *protocol, ca_server *server,
                                  ca_future *waiter, ca_transport **out) {
    *out = NULL;
    ca_transport *t = ca_small_alloc(sizeof *t);
    if (t == NULL) {
        close(fd);
        protocol_release(protocol);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    memset(t, 0, sizeof *t);
    ca_object_init(t, &ca_TransportType);
    t->loop = ca_incref(loop);
    t->protocol = protocol;
    t->fd = fd;
    t->waiter = ca_incref(waiter);
    t->high_water = WRITE_HIGH_DEFAULT;
    t->low_water = WRITE_HIGH_DEFAULT / 4;
    t->rop.fd = fd;
    t->rop.complete = transport_read_complete;
    t->wop.fd = fd;
    t->wop.complete = transport_send_complete;
    /* asyncio sets TCP_NODELAY on every TCP transport (base_events._set_nodelay) */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (server != NULL) {
        t->server = ca_incref(server);
        ca_server_attach(server, t);
    }
    /* the reference the open transport holds on itself, dropped by
     * _call_connection_lost */
    ca_incref(t);
    transport_list_add(t);
    ca_error *err = ca_loop_call_soon(loop, transport_start, ca_incref(t), ca_release_object, NULL, NULL);
    if (err != NULL) {
        t->lost = 1;
        transport_list_remove(t);
        if (t->server != NULL) {
            ca_server_detach(t->server, t);
            CA_CLEAR(t->server);
        }
        ca_decref(t); /* the self reference */
        ca_decref(t);
        return err;
    }
    *out = t;
    return NULL;
}

static ca_error *make_nonblocking(int fd) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) return ca_error_from_io(errno, "fcntl");
    return NULL;
}

ca_error *ca_loop_connect_accepted_socket(ca_loop *loop, ca_protocol_factory factory, void *arg, int fd,
                                          ca_transport **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    ca_error *err = make_nonblocking(fd);
    if (err != NULL) return err;
    ca_protocol *p = factory(arg);
    if (p == NULL) return ca_error_new(&ca_MemoryError, NULL);
    return ca_transport_new_socket(loop, fd, p, NULL, NULL, out);
}

/* MARK: - Server */

void ca_server_attach(ca_server *s, ca_transport *t) {
    t->srv_prev = NULL;
    t->srv_next = s->conns;
    if (s->conns != NULL) s->conns->srv_prev = t;
    s->conns = t;
    s->nconn++;
}

/* Server._wakeup: the waiters are taken out before any is resolved. */
static void server_wakeup(ca_server *s) {
    ca_waiters w = s->waiters;
    s->waiters = (ca_waiters){0};
    ca_future *f;
    while ((f = ca_waiters_popleft(&w)) != NULL) {
        if (f->fut_state == CA_FUTURE_PENDING) ca_decref(ca_future_set_result_impl(f, ca_none()));
        ca_decref(f);
    }
    ca_waiters_clear(&w);
}

void ca_server_detach(ca_server *s, ca_transport *t) {
    if (t->srv_prev != NULL) t->srv_prev->srv_next = t->srv_next;
    else s->conns = t->srv_next;
    if (t->srv_next != NULL) t->srv_next->srv_prev = t->srv_prev;
    t->srv_next = t->srv_prev = NULL;
    s->nconn--;
    if (s->nconn == 0 && s->closed) server_wakeup(s);
}

static void listener_arm(listener *l);

static void server_accept_retry_cb(void *arg) {
    ca_server *s = arg;
    CA_CLEAR(s->retry_timer);
    s->accept_paused = false;
    if (!s->serving) return;
    for (size_t i = 0; i < s->nlisteners; i++) listener_arm(&s->listeners[i]);
}

static void listener_close_fd(listener *l) {
    if (l->fd < 0) return;
    /* The fd stays open until the in-flight accept completes, but the
     * socket must stop listening now: shutdown moves it out of LISTEN, so
     * connects are refused and the pending accept fails. */
    if (l->op.state != CA_IO_OP_IDLE) (void)shutdown(l->fd, SHUT_RDWR);
    ca_io_close_when_idle(l->server->loop, l->fd);
    l->fd = -1;
}

static void listener_accept_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    listener *l = CA_CONTAINER_OF(op, listener, op);
    ca_server *s = l->server;
    ca_loop *loop = s->loop;
    bool more = (cflags & CA_IO_CQE_MORE) != 0;
    if (res >= 0) {
        if (!s->serving || loop->closed) {
            close(res);
        } else {
            /* _accept_connection2: a protocol and a transport per connection */
            ca_protocol *p = s->factory(s->factory_arg);
            ca_transport *t = NULL;
            ca_error *err = p == NULL ? ca_error_new(&ca_MemoryError, NULL)
                                      : ca_transport_new_socket(loop, res, p, s, NULL, &t);
            if (p == NULL) close(res);
            if (err != NULL) {
                report(loop, "Error on transport creation for incoming connection", err);
                ca_decref(err);
            }
            ca_decref(t);
        }
    } else if (res != -ECANCELED && s->serving && !loop->closed) {
        int e = -res;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            /* out of resources: stop accepting for a while (_accept_connection) */
            ca_error *exc = ca_error_from_io(e, "accept");
            report(loop, "socket.accept() out of system resource", exc);
            ca_decref(exc);
            if (!s->accept_paused) {
                s->accept_paused = true;
                for (size_t i = 0; i < s->nlisteners; i++) ca_io_cancel(loop, &s->listeners[i].op);
                ca_error *err = ca_loop_call_later(loop, ACCEPT_RETRY_DELAY_NS, server_accept_retry_cb, ca_incref(s),
                                                   ca_release_object, NULL, &s->retry_timer);
                ca_decref(err);
            }
        } else if (!(ca_io_transient(res) || e == ECONNABORTED)) {
            ca_error *exc = ca_error_from_io(e, "accept");
            report(loop, "Error accepting a connection", exc);
            ca_decref(exc);
        }
    }
    if (more) return;
    if (s->serving && !s->accept_paused && !loop->closed) listener_arm(l);
    ca_decref(s);
}

static void listener_arm(listener *l) {
    ca_server *s = l->server;
    if (l->fd < 0 || l->op.state != CA_IO_OP_IDLE || s->loop->closed) return;
    l->op.opcode = CA_IO_ACCEPT;
    l->op.flags = CA_IO_F_MULTISHOT;
    l->op.buf = NULL;
    ca_incref(s);
    ca_io_submit(s->loop, &l->op);
}

ca_error *ca_server_start_serving(ca_server *s) {
    if (s->closed) return ca_error_new(&ca_RuntimeError, "Server is closed");
    if (s->serving) return NULL;
    if (s->loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    s->serving = true;
    for (size_t i = 0; i < s->nlisteners; i++) listener_arm(&s->listeners[i]);
    return NULL;
}

bool ca_server_is_serving(const ca_server *s) { return s->serving; }

void ca_server_close(ca_server *s) {
    if (s->closed) return;
    s->closed = true;
    s->serving = false;
    if (s->retry_timer != NULL) {
        ca_handle_cancel(s->retry_timer);
        CA_CLEAR(s->retry_timer);
    }
    for (size_t i = 0; i < s->nlisteners; i++) {
        ca_io_cancel(s->loop, &s->listeners[i].op);
        listener_close_fd(&s->listeners[i]);
    }
    if (s->unix_path != NULL) {
        (void)unlink(s->unix_path);
        ca_free(s->unix_path);
        s->unix_path = NULL;
    }
    if (s->nconn == 0) server_wakeup(s);
}

static void server_each_client(ca_server *s, void (*fn)(ca_transport *)) {
    /* closing detaches later, from the ready queue, so the list is stable */
    for (ca_transport *t = s->conns; t != NULL; t = t->srv_next) fn(t);
}

void ca_server_close_clients(ca_server *s) { server_each_client(s, ca_transport_close); }
void ca_server_abort_clients(ca_server *s) { server_each_client(s, ca_transport_abort); }

ca_future *ca_server_wait_closed(ca_server *s) {
    ca_future *f = ca_future_new(s->loop);
    if (f == NULL) return NULL;
    if (s->closed && s->nconn == 0) {
        ca_decref(ca_future_set_result_impl(f, ca_none()));
        return f;
    }
    ca_error *err = ca_waiters_append(&s->waiters, f);
    if (err != NULL) {
        ca_decref(err);
        ca_decref(f);
        return NULL;
    }
    return f;
}

uint16_t ca_server_get_port(const ca_server *s) { return s->port; }

size_t ca_server_get_fds(const ca_server *s, int *fds, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].fd < 0) continue;
        if (n < cap) fds[n] = s->listeners[i].fd;
        n++;
    }
    return n;
}

size_t ca_server_connection_count(const ca_server *s) { return s->nconn; }

void ca_server_set_factory_release(ca_server *s, ca_release_fn release) { s->factory_arg_release = release; }

static void server_dealloc(ca_object *op) {
    ca_server *s = (ca_server *)op;
    for (size_t i = 0; i < s->nlisteners; i++) ca_io_close_when_idle(s->loop, s->listeners[i].fd);
    if (s->unix_path != NULL) {
        (void)unlink(s->unix_path);
        ca_free(s->unix_path);
    }
    ca_waiters_clear(&s->waiters);
    ca_decref(s->retry_timer);
    if (s->factory_arg_release != NULL) s->factory_arg_release(s->factory_arg);
    ca_decref(s->loop);
    ca_free(s);
}

static ca_server *server_new(ca_loop *loop, ca_protocol_factory factory, void *arg, const ca_server_options *opts) {
    ca_server *s = ca_calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    ca_object_init(s, &ca_ServerType);
    s->loop = ca_incref(loop);
    s->factory = factory;
    s->factory_arg = arg;
    s->backlog = opts && opts->backlog > 0 ? opts->backlog : 100;
    for (size_t i = 0; i < SERVER_MAX_LISTENERS; i++) s->listeners[i].fd = -1;
    return s;
}

static void server_add_listener(ca_server *s, int fd) {
    listener *l = &s->listeners[s->nlisteners++];
    l->fd = fd;
    l->server = s;
    l->op.fd = fd;
    l->op.complete = listener_accept_complete;
}

/* Binds and listens on one address; returns the fd or -1 with *err. */
static int listen_socket(const struct sockaddr *sa, socklen_t len, const ca_server_options *opts, int backlog,
                         bool v6only, ca_error **err) {
    char addr[160], what[200];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = ca_error_from_io(errno, "socket");
        return -1;
    }
    int one = 1;
    if (sa->sa_family != AF_UNIX && !(opts && opts->no_reuse_address))
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (opts && opts->reuse_port) (void)setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (v6only && sa->sa_family == AF_INET6) (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, sa, len) < 0) {
        int e = errno;
        ca_io_format_addr(sa, len, addr, sizeof addr);
        snprintf(what, sizeof what, "error while attempting to bind on address %s", addr);
        *err = ca_error_from_io(e, what);
        close(fd);
        return -1;
    }
    if (listen(fd, backlog) < 0) {
        *err = ca_error_from_io(errno, "listen");
        close(fd);
        return -1;
    }
    return fd;
}

static ca_error *server_finish(ca_server *s, const ca_server_options *opts, ca_server **out) {
    if (!(opts && opts->no_start_serving)) {
        ca_error *err = ca_server_start_serving(s);
        if (err != NULL) {
            ca_server_close(s);
            ca_decref(s);
            return err;
        }
    }
    *out = s;
    return NULL;
}

ca_error *ca_loop_create_server(ca_loop *loop, ca_protocol_factory factory, void *arg, const char *host,
                                uint16_t port, const ca_server_options *opts, ca_server **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    struct sockaddr_storage addrs[SERVER_MAX_LISTENERS];
    socklen_t lens[SERVER_MAX_LISTENERS];
    size_t n = 0;
    ca_error *err = ca_io_resolve_numeric(host, port, true, addrs, lens, SERVER_MAX_LISTENERS, &n);
    if (err != NULL) return err;
    if (n == 0) return ca_error_format(&ca_OSError, "getaddrinfo(%s) returned empty list", host ? host : "None");
    ca_server *s = server_new(loop, factory, arg, opts);
    if (s == NULL) return ca_error_new(&ca_MemoryError, NULL);
    for (size_t i = 0; i < n; i++) {
        /* with both families, IPv6 sockets must not also claim IPv4 */
        int fd = listen_socket((struct sockaddr *)&addrs[i], lens[i], opts, s->backlog, n > 1, &err);
        if (fd < 0) {
            ca_server_close(s);
            ca_decref(s);
            return err;
        }
        server_add_listener(s, fd);
        if (i == 0) {
            struct sockaddr_storage bound;
            socklen_t blen = sizeof bound;
            if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
                s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                            : ((struct sockaddr_in *)&bound)->sin_port);
        }
    }
    return server_finish(s, opts, out);
}

static ca_error *unix_address(const char *path, struct sockaddr_un *un, socklen_t *len) {
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof un->sun_path) return ca_error_format(&ca_ValueError, "invalid Unix socket path");
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return NULL;
}

ca_error *ca_loop_create_unix_server(ca_loop *loop, ca_protocol_factory factory, void *arg, const char *path,
                                     const ca_server_options *opts, ca_server **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    struct sockaddr_un un;
    socklen_t len;
    ca_error *err = unix_address(path, &un, &len);
    if (err != NULL) return err;
    /* unix_events.create_unix_server: remove a stale socket file */
    struct stat st;
    if (path[0] != '\0' && stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) (void)unlink(path);
    ca_server *s = server_new(loop, factory, arg, opts);
    if (s == NULL) return ca_error_new(&ca_MemoryError, NULL);
    int fd = listen_socket((struct sockaddr *)&un, len, opts, s->backlog, false, &err);
    if (fd < 0) {
        ca_decref(s);
        return err;
    }
    server_add_listener(s, fd);
    s->unix_path = ca_strdup(path);
    return server_finish(s, opts, out);
}

/* MARK: - create_connection */

/**
 * create_connection's future: the connect in flight and the addresses left
 * to try (base_events._connect_sock over each getaddrinfo entry). Cancelling
 * it cancels the connect.
 */
typedef struct connector {
    ca_future fut;
    ca_io_op op;
    ca_protocol_factory factory;
    void *factory_arg;
    struct sockaddr_storage addrs[CONNECT_MAX_ADDRS];
    socklen_t lens[CONNECT_MAX_ADDRS];
    size_t naddrs;
    size_t idx;
    int fd;
    ca_error *errors[CONNECT_MAX_ADDRS];
    size_t nerrors;
    ca_future *resolving;       /* getaddrinfo of a host name, until it is done (strong) */
} connector;

static bool connector_cancel(ca_future *fut, const char *msg);
static void connector_dealloc(ca_object *op);

static const ca_future_type connector_type = {
    .ft_base = {"Future", sizeof(connector), connector_dealloc, &ca_FutureType},
    .ft_cancel = connector_cancel,
};

static void connector_close_fd(connector *c) {
    if (c->fd < 0) return;
    ca_io_close_when_idle(c->fut.fut_loop, c->fd);
    c->fd = -1;
}

static void connector_dealloc(ca_object *op) {
    connector *c = (connector *)op;
    if (CA_UNLIKELY(c->fut.fut_log_tb)) {
        ca_future_finalize(&c->fut);
        if (op->ob_refcnt > 0) return;
    }
    connector_close_fd(c);
    CA_CLEAR(c->resolving);
    for (size_t i = 0; i < c->nerrors; i++) ca_decref(c->errors[i]);
    ca_future_clear_head(&c->fut);
    ca_free(c);
}

static bool connector_cancel(ca_future *fut, const char *msg) {
    if (!ca_future_cancel_impl(fut, msg)) return false;
    connector *c = (connector *)fut;
    if (c->resolving != NULL) ca_future_cancel(c->resolving, msg);
    ca_io_cancel(fut->fut_loop, &c->op);
    return true;
}

/* The error create_connection raises once every address failed. */
static ca_error *connector_final_error(connector *c) {
    if (c->nerrors == 1) return ca_incref(c->errors[0]);
    bool same = true;
    for (size_t i = 1; i < c->nerrors; i++)
        if (strcmp(ca_error_message(c->errors[i]), ca_error_message(c->errors[0])) != 0) same = false;
    if (same) return ca_incref(c->errors[0]);
    char msg[1024];
    size_t off = (size_t)snprintf(msg, sizeof msg, "Multiple exceptions: ");
    for (size_t i = 0; i < c->nerrors && off < sizeof msg; i++)
        off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", i ? ", " : "", ca_error_message(c->errors[i]));
    return ca_error_new(&ca_OSError, msg);
}

static void connector_fail(connector *c, ca_error *exc) {
    ca_decref(ca_future_set_exception_impl(&c->fut, exc));
    ca_decref(exc);
}

/* Starts a connect to the next address; false when none is left. */
static bool connector_try_next(connector *c) {
    ca_loop *loop = c->fut.fut_loop;
    while (c->idx < c->naddrs) {
        size_t i = c->idx;
        const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[i];
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if (c->nerrors < CONNECT_MAX_ADDRS) c->errors[c->nerrors++] = ca_error_from_io(errno, "socket");
            c->idx++;
            continue;
        }
        c->fd = fd;
        c->op.fd = fd;
        c->op.opcode = CA_IO_CONNECT;
        c->op.buf = &c->addrs[i];
        c->op.addrlen = c->lens[i];
        c->op.flags = 0;
        ca_incref(c);
        ca_io_submit(loop, &c->op);
        return true;
    }
    return false;
}

static void connector_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    connector *c = CA_CONTAINER_OF(op, connector, op);
    ca_loop *loop = c->fut.fut_loop;
    if (c->fut.fut_state != CA_FUTURE_PENDING || loop->closed) {
        connector_close_fd(c); /* cancelled: a connection made in the race is closed */
        ca_decref(c);
        return;
    }
    if (res == 0) {
        int fd = c->fd;
        c->fd = -1;
        ca_protocol *p = c->factory(c->factory_arg);
        ca_transport *t = NULL;
        ca_error *err = p == NULL ? ca_error_new(&ca_MemoryError, NULL)
                                  : ca_transport_new_socket(loop, fd, p, NULL, &c->fut, &t);
        if (p == NULL) close(fd);
        if (err != NULL) connector_fail(c, err);
        ca_decref(t);
        ca_decref(c);
        return;
    }
    char addr[160], what[200];
    ca_io_format_addr((struct sockaddr *)&c->addrs[c->idx], c->lens[c->idx], addr, sizeof addr);
    snprintf(what, sizeof what, "Connect call failed %s", addr);
    if (c->nerrors < CONNECT_MAX_ADDRS) c->errors[c->nerrors++] = ca_error_from_io(-res, what);
    connector_close_fd(c);
    c->idx++;
    if (!connector_try_next(c)) connector_fail(c, connector_final_error(c));
    ca_decref(c);
}

static connector *connector_new(ca_loop *loop, ca_protocol_factory factory, void *arg) {
    connector *c = ca_calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    ca_object_init(c, &connector_type.ft_base);
    ca_future_init_head(&c->fut, loop);
    c->factory = factory;
    c->factory_arg = arg;
    c->fd = -1;
    c->op.complete = connector_complete;
    return c;
}

static ca_error *connector_start(connector *c, ca_future **out) {
    if (!connector_try_next(c)) {
        ca_error *exc = connector_final_error(c);
        ca_decref(c);
        return exc;
    }
    *out = &c->fut;
    return NULL;
}


/* The name was looked up (base_events._ensure_resolved): try its addresses. */
static void connector_resolved(ca_future *f, void *arg) {
    connector *c = arg;
    CA_CLEAR(c->resolving);
    if (c->fut.fut_state != CA_FUTURE_PENDING || c->fut.fut_loop->closed) return;
    ca_value v;
    ca_error *err = ca_future_result(f, &v);
    if (err == NULL) {
        const ca_addrinfo_list *l = (const ca_addrinfo_list *)v.u.obj;
        for (size_t i = 0; i < l->count && c->naddrs < CONNECT_MAX_ADDRS; i++) {
            memcpy(&c->addrs[c->naddrs], &l->items[i].addr, l->items[i].addrlen);
            c->lens[c->naddrs++] = l->items[i].addrlen;
        }
        if (c->naddrs == 0) err = ca_error_new(&ca_OSError, "getaddrinfo() returned empty list");
    }
    if (err == NULL && !connector_try_next(c)) err = connector_final_error(c);
    if (err != NULL) connector_fail(c, err);
}

/* A name rather than an IP literal: resolved on the executor first. */
static ca_error *connector_resolve(connector *c, const char *host, uint16_t port, ca_future **out) {
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    ca_error *err = ca_loop_getaddrinfo(c->fut.fut_loop, host, service, AF_UNSPEC, SOCK_STREAM, 0, 0, &c->resolving);
    if (err == NULL)
        err = ca_future_add_done_callback(c->resolving, connector_resolved, ca_incref(c), ca_release_object, NULL);
    if (err != NULL) {
        if (c->resolving != NULL) ca_future_cancel(c->resolving, NULL);
        ca_decref(c);
        return err;
    }
    *out = &c->fut;
    return NULL;
}

ca_error *ca_loop_create_connection(ca_loop *loop, ca_protocol_factory factory, void *arg, const char *host,
                                    uint16_t port, ca_future **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (host == NULL || host[0] == '\0') return ca_error_new(&ca_ValueError, "host and port must be specified");
    if (ca_io_loop_get(loop) == NULL) return ca_error_new(&ca_MemoryError, NULL);
    connector *c = connector_new(loop, factory, arg);
    if (c == NULL) return ca_error_new(&ca_MemoryError, NULL);
    if (!ca_io_host_is_numeric(host, AF_UNSPEC)) return connector_resolve(c, host, port, out);
    ca_error *err = ca_io_resolve_numeric(host, port, false, c->addrs, c->lens, CONNECT_MAX_ADDRS, &c->naddrs);
    if (err == NULL && c->naddrs == 0) err = ca_error_format(&ca_OSError, "getaddrinfo(%s) returned empty list", host);
    if (err != NULL) {
        ca_decref(c);
        return err;
    }
    return connector_start(c, out);
}

ca_error *ca_loop_create_unix_connection(ca_loop *loop, ca_protocol_factory factory, void *arg, const char *path,
                                         ca_future **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (ca_io_loop_get(loop) == NULL) return ca_error_new(&ca_MemoryError, NULL);
    connector *c = connector_new(loop, factory, arg);
    if (c == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_error *err = unix_address(path, (struct sockaddr_un *)&c->addrs[0], &c->lens[0]);
    if (err != NULL) {
        ca_decref(c);
        return err;
    }
    c->naddrs = 1;
    return connector_start(c, out);
}
