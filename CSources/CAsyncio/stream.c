/*
 * stream.c — asyncio streams (Lib/asyncio/streams.py): StreamReader and
 * its read coroutines, StreamReaderProtocol with FlowControlMixin's drain
 * waiters, StreamWriter, open_connection and start_server.
 *
 * The read coroutines are kit coroutines, one type per method; a read that
 * finds its data buffered returns on its first step, without suspending.
 */
#include "io_internal.h"
#include "sync_internal.h"

#include <stdio.h>
#include <string.h>

/* MARK: - StreamReader */

struct ca_stream_reader {
    ca_object ob_base;
    ca_loop *loop;          /* strong */
    size_t limit;
    uint8_t *buf;           /* data is buf[start, start + len) */
    size_t start;
    size_t len;
    size_t cap;
    bool eof;
    bool paused;            /* we paused the transport's reading */
    ca_future *waiter;      /* the read waiting for data (strong) */
    ca_error *exception;    /* strong */
    ca_transport *transport; /* borrowed: valid until connection_lost */
};

static void reader_dealloc(ca_object *op);
const ca_type ca_StreamReaderType = {"StreamReader", sizeof(ca_stream_reader), reader_dealloc, NULL};

ca_stream_reader *ca_stream_reader_new(ca_loop *loop, size_t limit) {
    ca_stream_reader *r = ca_small_alloc(sizeof *r);
    if (r == NULL) return NULL;
    memset(r, 0, sizeof *r);
    ca_object_init(r, &ca_StreamReaderType);
    r->loop = ca_incref(loop);
    r->limit = limit ? limit : CA_STREAM_DEFAULT_LIMIT;
    return r;
}

static void reader_dealloc(ca_object *op) {
    ca_stream_reader *r = (ca_stream_reader *)op;
    if (r->buf != NULL) ca_small_free(r->buf, r->cap);
    ca_decref(r->waiter);
    ca_decref(r->exception);
    ca_decref(r->loop);
    ca_small_free(r, sizeof *r);
}

static inline uint8_t *reader_data(const ca_stream_reader *r) { return r->buf + r->start; }

/* Drops the first `n` buffered bytes. */
static void reader_consume(ca_stream_reader *r, size_t n) {
    r->start += n;
    r->len -= n;
    if (r->len == 0) r->start = 0;
}

/* Takes the first `n` buffered bytes as a new ca_bytes. */
static ca_error *reader_take(ca_stream_reader *r, size_t n, ca_bytes **out) {
    ca_bytes *b = ca_bytes_from(reader_data(r), n);
    if (b == NULL) return ca_error_new(&ca_MemoryError, NULL);
    reader_consume(r, n);
    *out = b;
    return NULL;
}

/* _wakeup_waiter */
static void reader_wakeup_waiter(ca_stream_reader *r) {
    ca_future *w = r->waiter;
    if (w == NULL) return;
    r->waiter = NULL;
    if (w->fut_state == CA_FUTURE_PENDING) ca_decref(ca_future_set_result_impl(w, ca_none()));
    ca_decref(w);
}

/* _maybe_resume_transport */
static void reader_maybe_resume_transport(ca_stream_reader *r) {
    if (r->paused && r->len <= r->limit) {
        r->paused = false;
        if (r->transport != NULL) ca_transport_resume_reading(r->transport);
    }
}

ca_error *ca_stream_reader_feed_data(ca_stream_reader *r, const void *data, size_t len) {
    if (len == 0) return NULL;
    if (r->start + r->len + len > r->cap) {
        if (r->start > 0 && r->len + len <= r->cap) {
            memmove(r->buf, r->buf + r->start, r->len);
            r->start = 0;
        } else {
            size_t cap = r->cap ? r->cap : 4096;
            while (cap < r->len + len) cap *= 2;
            uint8_t *nb = ca_small_alloc(cap);
            if (nb == NULL) return ca_error_new(&ca_MemoryError, NULL);
            if (r->len > 0) memcpy(nb, r->buf + r->start, r->len);
            if (r->buf != NULL) ca_small_free(r->buf, r->cap);
            r->buf = nb;
            r->cap = cap;
            r->start = 0;
        }
    }
    memcpy(r->buf + r->start + r->len, data, len);
    r->len += len;
    reader_wakeup_waiter(r);
    if (r->transport != NULL && !r->paused && r->len > 2 * r->limit) {
        ca_transport_pause_reading(r->transport);
        r->paused = true;
    }
    return NULL;
}

void ca_stream_reader_feed_eof(ca_stream_reader *r) {
    r->eof = true;
    reader_wakeup_waiter(r);
}

void ca_stream_reader_set_exception(ca_stream_reader *r, ca_error *exc) {
    ca_incref(exc);
    CA_CLEAR(r->exception);
    r->exception = exc;
    ca_future *w = r->waiter;
    if (w == NULL) return;
    r->waiter = NULL;
    if (w->fut_state != CA_FUTURE_CANCELLED) ca_decref(ca_future_set_exception_impl(w, exc));
    ca_decref(w);
}

ca_error *ca_stream_reader_exception(const ca_stream_reader *r) { return r->exception; }
bool ca_stream_reader_at_eof(const ca_stream_reader *r) { return r->eof && r->len == 0; }
bool ca_stream_reader_eof_received(const ca_stream_reader *r) { return r->eof; }
size_t ca_stream_reader_buffered(const ca_stream_reader *r) { return r->len; }
void ca_stream_reader_set_transport(ca_stream_reader *r, ca_transport *t) { r->transport = t; }

/* _wait_for_data's part before the await: the waiter (new reference). */
static ca_error *reader_wait_begin(ca_stream_reader *r, const char *func_name, ca_future **out) {
    *out = NULL;
    if (r->waiter != NULL)
        return ca_error_format(&ca_RuntimeError,
                               "%s() called while another coroutine is already waiting for incoming data", func_name);
    /* waiting for data while paused would deadlock: resume */
    if (r->paused) {
        r->paused = false;
        if (r->transport != NULL) ca_transport_resume_reading(r->transport);
    }
    ca_future *w = ca_future_new(r->loop);
    if (w == NULL) return ca_error_new(&ca_MemoryError, NULL);
    r->waiter = ca_incref(w);
    *out = w;
    return NULL;
}

const uint8_t *ca_stream_reader_peek(const ca_stream_reader *r, size_t *len) {
    *len = r->len;
    return r->buf != NULL ? reader_data(r) : NULL;
}

void ca_stream_reader_consume(ca_stream_reader *r, size_t n) {
    reader_consume(r, n < r->len ? n : r->len);
    reader_maybe_resume_transport(r);
}

ca_error *ca_stream_reader_wait_for_data(ca_stream_reader *r, const char *func_name, ca_future **out) {
    return reader_wait_begin(r, func_name, out);
}

void ca_stream_reader_wait_done(ca_stream_reader *r, ca_future *waiter) {
    if (r->waiter != NULL && r->waiter == waiter) CA_CLEAR(r->waiter);
}

/* The frame shared by the read coroutines. */
typedef struct reader_frame {
    ca_cframe cf;
    ca_stream_reader *r;        /* strong */
    int64_t n;
    size_t offset;
    size_t isep;
    size_t seplen;
    uint8_t *sep;               /* sep_inline, or owned when longer */
    uint8_t sep_inline[16];
    ca_bytes *acc;              /* read(-1): what was read so far */
} reader_frame;

static void reader_frame_finalize(reader_frame *self) {
    ca_stream_reader *r = self->r;
    /* `finally: self._waiter = None` for a frame closed while waiting */
    if (r != NULL && r->waiter != NULL && r->waiter == self->cf.awaited) CA_CLEAR(r->waiter);
    CA_CLEAR(self->r);
    CA_CLEAR(self->acc);
    if (self->sep != NULL && self->sep != self->sep_inline) ca_free(self->sep);
    self->sep = NULL;
}

/* `await self._wait_for_data(name)`, raising what it raises. */
#define READER_WAIT_FOR_DATA(name)                                        \
    do {                                                                  \
        ca_future *rw__;                                                  \
        ca_error *rerr__ = reader_wait_begin(self->r, (name), &rw__);     \
        if (rerr__ != NULL) CA_RAISE(rerr__);                             \
        CA_AWAIT_TRY(rw__, rerr__);                                       \
        if (self->r->waiter == ca__cf->awaited) CA_CLEAR(self->r->waiter); \
        if (rerr__ != NULL) CA_RAISE(rerr__);                             \
    } while (0)

static ca_error *incomplete_read_error(ca_bytes *partial, int64_t expected) {
    ca_error *e;
    if (expected < 0)
        e = ca_error_format(&ca_IncompleteReadError, "%zu bytes read on a total of None expected bytes", partial->len);
    else
        e = ca_error_format(&ca_IncompleteReadError, "%zu bytes read on a total of %lld expected bytes", partial->len,
                            (long long)expected);
    ca_value_clear(&e->payload);
    e->payload = ca_obj(partial);
    return e;
}

static ca_error *limit_overrun_error(const char *message, size_t consumed) {
    ca_error *e = ca_error_new(&ca_LimitOverrunError, message);
    ca_value_clear(&e->payload);
    e->payload = ca_int((int64_t)consumed);
    return e;
}

/* The whole buffer as an IncompleteReadError. */
static ca_error *reader_incomplete(ca_stream_reader *r, int64_t expected) {
    ca_bytes *partial = NULL;
    ca_error *err = reader_take(r, r->len, &partial);
    if (err != NULL) return err;
    return incomplete_read_error(partial, expected);
}

/* MARK: read(n) */

CA_CORO_TYPE(stream_read_type, reader_frame, stream_read, reader_frame_finalize);

CA_CORO_BODY(stream_read, reader_frame) {
    ca_stream_reader *r = self->r;
    ca_bytes *data = NULL;
    ca_error *err;
    CA_BEGIN;
    if (r->exception != NULL) CA_RAISE(ca_incref(r->exception));
    if (self->n == 0) CA_RETURN(ca_obj(ca_bytes_new(0)));
    if (self->n < 0) {
        /* read until EOF, a limit-sized block at a time */
        self->acc = ca_bytes_new(0);
        if (self->acc == NULL) CA_RAISE(ca_error_new(&ca_MemoryError, NULL));
        for (;;) {
            if (self->r->exception != NULL) CA_RAISE(ca_incref(self->r->exception));
            if (self->r->len == 0 && !self->r->eof) READER_WAIT_FOR_DATA("read");
            r = self->r;
            if (r->len == 0) break;
            size_t k = r->len < r->limit ? r->len : r->limit;
            err = ca_bytes_append(self->acc, reader_data(r), k);
            if (err != NULL) CA_RAISE(err);
            reader_consume(r, k);
            reader_maybe_resume_transport(r);
        }
        data = self->acc;
        self->acc = NULL;
        CA_RETURN(ca_obj(data));
    }
    if (r->len == 0 && !r->eof) READER_WAIT_FOR_DATA("read");
    r = self->r;
    err = reader_take(r, r->len < (uint64_t)self->n ? r->len : (size_t)self->n, &data);
    if (err != NULL) CA_RAISE(err);
    reader_maybe_resume_transport(r);
    CA_RETURN(ca_obj(data));
    CA_END;
}

/* MARK: readexactly(n) */

CA_CORO_TYPE(stream_readexactly_type, reader_frame, stream_readexactly, reader_frame_finalize);

CA_CORO_BODY(stream_readexactly, reader_frame) {
    ca_stream_reader *r = self->r;
    ca_bytes *data = NULL;
    ca_error *err;
    CA_BEGIN;
    if (self->n < 0) CA_RAISE(ca_error_new(&ca_ValueError, "readexactly size can not be less than zero"));
    if (r->exception != NULL) CA_RAISE(ca_incref(r->exception));
    if (self->n == 0) CA_RETURN(ca_obj(ca_bytes_new(0)));
    while (self->r->len < (uint64_t)self->n) {
        if (self->r->eof) CA_RAISE(reader_incomplete(self->r, self->n));
        READER_WAIT_FOR_DATA("readexactly");
    }
    r = self->r;
    err = reader_take(r, (size_t)self->n, &data);
    if (err != NULL) CA_RAISE(err);
    reader_maybe_resume_transport(r);
    CA_RETURN(ca_obj(data));
    CA_END;
}

/* MARK: readuntil(separator) and readline() */

static bool reader_find(const ca_stream_reader *r, const uint8_t *sep, size_t seplen, size_t offset, size_t *at) {
    const uint8_t *base = reader_data(r);
    const uint8_t *p = memmem(base + offset, r->len - offset, sep, seplen);
    if (p == NULL) return false;
    *at = (size_t)(p - base);
    return true;
}

/* The loop of readuntil: returns with self->isep set, or raises the
 * LimitOverrunError / IncompleteReadError readuntil raises. */
#define READER_FIND_SEPARATOR(name)                                                                    \
    do {                                                                                               \
        self->offset = 0;                                                                              \
        for (;;) {                                                                                     \
            size_t buflen = self->r->len;                                                              \
            if (buflen >= self->offset + self->seplen) {                                               \
                if (reader_find(self->r, self->sep, self->seplen, self->offset, &self->isep)) break;   \
                self->offset = buflen + 1 - self->seplen;                                              \
                if (self->offset > self->r->limit)                                                     \
                    CA_RAISE(limit_overrun_error("Separator is not found, and chunk exceed the limit", \
                                                 self->offset));                                       \
            }                                                                                          \
            if (self->r->eof) CA_RAISE(reader_incomplete(self->r, -1));                                \
            READER_WAIT_FOR_DATA(name);                                                                \
        }                                                                                              \
        if (self->isep > self->r->limit)                                                               \
            CA_RAISE(limit_overrun_error("Separator is found, but chunk is longer than limit",         \
                                         self->isep));                                                 \
    } while (0)

CA_CORO_TYPE(stream_readuntil_type, reader_frame, stream_readuntil, reader_frame_finalize);

CA_CORO_BODY(stream_readuntil, reader_frame) {
    ca_stream_reader *r = self->r;
    ca_bytes *data = NULL;
    ca_error *err;
    CA_BEGIN;
    if (self->seplen == 0) CA_RAISE(ca_error_new(&ca_ValueError, "Separator should be at least one-byte string"));
    if (r->exception != NULL) CA_RAISE(ca_incref(r->exception));
    READER_FIND_SEPARATOR("readuntil");
    r = self->r;
    err = reader_take(r, self->isep + self->seplen, &data);
    if (err != NULL) CA_RAISE(err);
    reader_maybe_resume_transport(r);
    CA_RETURN(ca_obj(data));
    CA_END;
}

/* readline = readuntil(b'\n') with its two exceptions turned into a partial
 * line and a ValueError. The body runs readuntil's loop with the handlers
 * inlined: a kit body cannot catch what a nested coroutine raises cheaply. */
static ca_error *readline_overrun(ca_stream_reader *r, ca_error *exc) {
    size_t consumed = (size_t)exc->payload.u.i;
    if (r->len >= consumed + 1 && reader_data(r)[consumed] == '\n') reader_consume(r, consumed + 1);
    else reader_consume(r, r->len);
    reader_maybe_resume_transport(r);
    ca_error *v = ca_error_new(&ca_ValueError, ca_error_message(exc));
    ca_decref(exc);
    return v;
}

CA_CORO_TYPE(stream_readline_type, reader_frame, stream_readline, reader_frame_finalize);

CA_CORO_BODY(stream_readline, reader_frame) {
    ca_stream_reader *r = self->r;
    ca_bytes *data = NULL;
    ca_error *err;
    CA_BEGIN;
    if (r->exception != NULL) CA_RAISE(ca_incref(r->exception));
    self->offset = 0;
    for (;;) {
        size_t buflen = self->r->len;
        if (buflen >= self->offset + 1) {
            if (reader_find(self->r, self->sep, 1, self->offset, &self->isep)) break;
            self->offset = buflen;
            if (self->offset > self->r->limit)
                CA_RAISE(readline_overrun(self->r, limit_overrun_error(
                                                       "Separator is not found, and chunk exceed the limit",
                                                       self->offset)));
        }
        if (self->r->eof) {
            /* IncompleteReadError: the partial line is the result */
            err = reader_take(self->r, self->r->len, &data);
            if (err != NULL) CA_RAISE(err);
            CA_RETURN(ca_obj(data));
        }
        READER_WAIT_FOR_DATA("readuntil");
    }
    r = self->r;
    if (self->isep > r->limit)
        CA_RAISE(readline_overrun(r, limit_overrun_error("Separator is found, but chunk is longer than limit",
                                                         self->isep)));
    err = reader_take(r, self->isep + 1, &data);
    if (err != NULL) CA_RAISE(err);
    reader_maybe_resume_transport(r);
    CA_RETURN(ca_obj(data));
    CA_END;
}

static reader_frame *reader_frame_new(const ca_cframe_type *type, ca_stream_reader *r) {
    reader_frame *f = (reader_frame *)ca_cframe_new(type, sizeof(reader_frame));
    if (f == NULL) return NULL;
    f->r = ca_incref(r);
    return f;
}

ca_coro *ca_stream_reader_read(ca_stream_reader *r, int64_t n) {
    reader_frame *f = reader_frame_new(&stream_read_type, r);
    if (f == NULL) return NULL;
    f->n = n;
    return &f->cf.co;
}

ca_coro *ca_stream_reader_readexactly(ca_stream_reader *r, int64_t n) {
    reader_frame *f = reader_frame_new(&stream_readexactly_type, r);
    if (f == NULL) return NULL;
    f->n = n;
    return &f->cf.co;
}

ca_coro *ca_stream_reader_readline(ca_stream_reader *r) {
    reader_frame *f = reader_frame_new(&stream_readline_type, r);
    if (f == NULL) return NULL;
    f->sep = f->sep_inline;
    f->sep_inline[0] = '\n';
    f->seplen = 1;
    return &f->cf.co;
}

ca_coro *ca_stream_reader_readuntil(ca_stream_reader *r, const void *separator, size_t seplen) {
    reader_frame *f = reader_frame_new(&stream_readuntil_type, r);
    if (f == NULL) return NULL;
    if (seplen <= sizeof f->sep_inline) {
        f->sep = f->sep_inline;
    } else {
        f->sep = ca_malloc(seplen);
        if (f->sep == NULL) {
            ca_decref(f);
            return NULL;
        }
    }
    if (seplen > 0) memcpy(f->sep, separator, seplen);
    f->seplen = seplen;
    return &f->cf.co;
}

/* MARK: - StreamReaderProtocol */

typedef struct stream_server_ctx {
    ca_loop *loop;          /* strong */
    ca_stream_client_cb cb;
    void *arg;
    ca_release_fn arg_release; /* runs on `arg` with the server's end (may be NULL) */
    size_t limit;
} stream_server_ctx;

/* StreamReaderProtocol(FlowControlMixin, Protocol); refcounted because the
 * writer keeps it for drain() and wait_closed(). */
typedef struct stream_protocol {
    ca_object ob_base;
    ca_protocol proto;
    ca_loop *loop;              /* strong */
    ca_stream_reader *reader;   /* strong; dropped at connection_lost */
    ca_stream_writer *writer;   /* server side: made in connection_made (strong) */
    ca_transport *transport;    /* borrowed, between made and lost */
    ca_future *closed;          /* strong */
    ca_task *task;              /* the client_connected_cb task (strong) */
    stream_server_ctx *ctx;     /* server side (borrowed from the server) */
    /* FlowControlMixin */
    bool paused;
    bool connection_lost;
    ca_waiters drain_waiters;   /* _drain_waiters */
} stream_protocol;

static void stream_protocol_dealloc(ca_object *op);
static const ca_type stream_protocol_type = {"StreamReaderProtocol", sizeof(stream_protocol),
                                             stream_protocol_dealloc, NULL};

static inline stream_protocol *sp_of(ca_protocol *p) { return CA_CONTAINER_OF(p, stream_protocol, proto); }

struct ca_stream_writer {
    ca_object ob_base;
    ca_transport *transport;    /* strong */
    stream_protocol *protocol;  /* strong */
    ca_stream_reader *reader;   /* strong, may be NULL */
    ca_loop *loop;              /* strong */
};

static void writer_dealloc(ca_object *op);
const ca_type ca_StreamWriterType = {"StreamWriter", sizeof(ca_stream_writer), writer_dealloc, NULL};

static ca_stream_writer *writer_new(ca_transport *t, stream_protocol *p, ca_stream_reader *r) {
    ca_stream_writer *w = ca_small_alloc(sizeof *w);
    if (w == NULL) return NULL;
    ca_object_init(w, &ca_StreamWriterType);
    w->transport = ca_incref(t);
    w->protocol = ca_incref(p);
    w->reader = ca_incref(r);
    w->loop = ca_incref(ca_transport_get_loop(t));
    return w;
}

static void writer_dealloc(ca_object *op) {
    ca_stream_writer *w = (ca_stream_writer *)op;
    ca_decref(w->transport);
    ca_decref(w->protocol);
    ca_decref(w->reader);
    ca_decref(w->loop);
    ca_small_free(w, sizeof *w);
}

/* The callback of the client_connected_cb task. */
static void client_task_done(ca_future *fut, void *arg) {
    ca_transport *t = arg;
    if (fut->fut_state == CA_FUTURE_CANCELLED) {
        ca_transport_close(t);
        return;
    }
    ca_error *exc = NULL;
    ca_decref(ca_future_exception(fut, &exc));
    if (exc != NULL) {
        ca_exception_context c = {.message = "Unhandled exception in client_connected_cb", .exception = exc,
                                  .future = fut};
        ca_loop_call_exception_handler(fut->fut_loop, &c);
        ca_transport_close(t);
        ca_decref(exc);
    }
}


static ca_error *sp_connection_made(ca_protocol *self, ca_transport *t) {
    stream_protocol *p = sp_of(self);
    p->transport = t;
    if (p->reader != NULL) ca_stream_reader_set_transport(p->reader, t);
    if (p->ctx == NULL) return NULL;
    p->writer = writer_new(t, p, p->reader);
    if (p->writer == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_coro *coro = p->ctx->cb(p->reader, p->writer, p->ctx->arg);
    if (coro == NULL) return NULL;
    ca_task *task = NULL;
    ca_error *err = ca_loop_create_task(p->loop, coro, NULL, &task);
    if (err != NULL) return err;
    p->task = task;
    return ca_future_add_done_callback((ca_future *)task, client_task_done, ca_incref(t), ca_release_object, NULL);
}

static ca_error *sp_data_received(ca_protocol *self, const void *data, size_t len) {
    stream_protocol *p = sp_of(self);
    return p->reader != NULL ? ca_stream_reader_feed_data(p->reader, data, len) : NULL;
}

static ca_error *sp_eof_received(ca_protocol *self, bool *keep_open) {
    stream_protocol *p = sp_of(self);
    if (p->reader != NULL) ca_stream_reader_feed_eof(p->reader);
    *keep_open = true;
    return NULL;
}

static void sp_wake_drain_waiters(stream_protocol *p, ca_error *exc) {
    for (size_t i = 0; i < p->drain_waiters.len; i++) {
        ca_future *w = ca_waiters_at(&p->drain_waiters, i);
        if (w->fut_state != CA_FUTURE_PENDING) continue;
        if (exc == NULL) ca_decref(ca_future_set_result_impl(w, ca_none()));
        else ca_decref(ca_future_set_exception_impl(w, exc));
    }
}

static ca_error *sp_connection_lost(ca_protocol *self, ca_error *exc) {
    stream_protocol *p = sp_of(self);
    if (p->reader != NULL) {
        if (exc == NULL) ca_stream_reader_feed_eof(p->reader);
        else ca_stream_reader_set_exception(p->reader, exc);
        ca_stream_reader_set_transport(p->reader, NULL);
    }
    if (p->closed->fut_state == CA_FUTURE_PENDING) {
        if (exc == NULL) ca_decref(ca_future_set_result_impl(p->closed, ca_none()));
        else ca_decref(ca_future_set_exception_impl(p->closed, exc));
    }
    /* FlowControlMixin.connection_lost */
    p->connection_lost = true;
    if (p->paused) sp_wake_drain_waiters(p, exc);
    p->transport = NULL;
    CA_CLEAR(p->reader);
    CA_CLEAR(p->writer);
    CA_CLEAR(p->task);
    return NULL;
}

static ca_error *sp_pause_writing(ca_protocol *self) {
    sp_of(self)->paused = true;
    return NULL;
}

static ca_error *sp_resume_writing(ca_protocol *self) {
    stream_protocol *p = sp_of(self);
    p->paused = false;
    sp_wake_drain_waiters(p, NULL);
    return NULL;
}

/* The transport is done with us; what we hold that may point back at us
 * (the writer, the client's task) goes now, or a transport torn down by a
 * closing loop without connection_lost would leave a cycle. */
static void sp_release(ca_protocol *self) {
    stream_protocol *p = sp_of(self);
    CA_CLEAR(p->writer);
    CA_CLEAR(p->task);
    ca_decref(p);
}

static const ca_protocol_ops stream_protocol_ops = {
    .connection_made = sp_connection_made,
    .data_received = sp_data_received,
    .eof_received = sp_eof_received,
    .connection_lost = sp_connection_lost,
    .pause_writing = sp_pause_writing,
    .resume_writing = sp_resume_writing,
    .release = sp_release,
};

static stream_protocol *stream_protocol_new(ca_loop *loop, size_t limit, stream_server_ctx *ctx) {
    stream_protocol *p = ca_small_alloc(sizeof *p);
    if (p == NULL) return NULL;
    memset(p, 0, sizeof *p);
    ca_object_init(p, &stream_protocol_type);
    p->proto.ops = &stream_protocol_ops;
    p->loop = ca_incref(loop);
    p->ctx = ctx;
    p->reader = ca_stream_reader_new(loop, limit);
    p->closed = ca_future_new(loop);
    if (p->reader == NULL || p->closed == NULL) {
        ca_decref(p);
        return NULL;
    }
    return p;
}

static void stream_protocol_dealloc(ca_object *op) {
    stream_protocol *p = (stream_protocol *)op;
    /* StreamReaderProtocol.__del__: an exception on `closed` that nobody
     * awaited is not worth a "never retrieved" report */
    if (p->closed != NULL) p->closed->fut_log_tb = 0;
    ca_decref(p->closed);
    ca_decref(p->reader);
    ca_decref(p->writer);
    ca_decref(p->task);
    ca_waiters_clear(&p->drain_waiters);
    ca_decref(p->loop);
    ca_small_free(p, sizeof *p);
}

/* MARK: - StreamWriter */

ca_error *ca_stream_writer_write(ca_stream_writer *w, const void *data, size_t len) {
    return ca_transport_write(w->transport, data, len);
}

ca_error *ca_stream_writer_writelines(ca_stream_writer *w, const struct iovec *iov, int iovcnt) {
    return ca_transport_writelines(w->transport, iov, iovcnt);
}

ca_error *ca_stream_writer_write_eof(ca_stream_writer *w) { return ca_transport_write_eof(w->transport); }
bool ca_stream_writer_can_write_eof(const ca_stream_writer *w) { return ca_transport_can_write_eof(w->transport); }
void ca_stream_writer_close(ca_stream_writer *w) { ca_transport_close(w->transport); }
bool ca_stream_writer_is_closing(const ca_stream_writer *w) { return ca_transport_is_closing(w->transport); }
ca_transport *ca_stream_writer_transport(const ca_stream_writer *w) { return w->transport; }
ca_stream_reader *ca_stream_writer_reader(const ca_stream_writer *w) { return w->reader; }

typedef struct writer_frame {
    ca_cframe cf;
    ca_stream_writer *w;    /* strong */
} writer_frame;

static void writer_frame_finalize(writer_frame *self) {
    /* `finally: self._drain_waiters.remove(waiter)` for a frame closed
     * while waiting */
    if (self->w != NULL && self->cf.awaited != NULL) ca_waiters_remove(&self->w->protocol->drain_waiters, self->cf.awaited);
    CA_CLEAR(self->w);
}

bool ca_stream_writer_drain_ready(const ca_stream_writer *w) {
    const stream_protocol *p = w->protocol;
    return !p->paused && !p->connection_lost && !ca_transport_is_closing(w->transport) &&
           (w->reader == NULL || w->reader->exception == NULL);
}

CA_CORO_TYPE(stream_drain_type, writer_frame, stream_drain, writer_frame_finalize);

CA_CORO_BODY(stream_drain, writer_frame) {
    ca_stream_writer *w = self->w;
    stream_protocol *p = w->protocol;
    ca_error *err;
    ca_future *waiter;
    CA_BEGIN;
    if (w->reader != NULL && w->reader->exception != NULL) CA_RAISE(ca_incref(w->reader->exception));
    if (ca_transport_is_closing(w->transport)) {
        /* let connection_lost run: its error, or "Connection lost", is
         * what drain then raises */
        CA_YIELD();
    }
    /* FlowControlMixin._drain_helper */
    p = self->w->protocol;
    if (p->connection_lost) CA_RAISE(ca_error_new(&ca_ConnectionResetError, "Connection lost"));
    if (!p->paused) CA_RETURN(ca_none());
    waiter = ca_future_new(p->loop);
    if (waiter == NULL) CA_RAISE(ca_error_new(&ca_MemoryError, NULL));
    err = ca_waiters_append(&p->drain_waiters, waiter);
    if (err != NULL) {
        ca_decref(waiter);
        CA_RAISE(err);
    }
    CA_AWAIT_TRY(waiter, err);
    ca_waiters_remove(&self->w->protocol->drain_waiters, ca__cf->awaited);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(ca_none());
    CA_END;
}

CA_CORO_TYPE(stream_wait_closed_type, writer_frame, stream_wait_closed, writer_frame_finalize);

CA_CORO_BODY(stream_wait_closed, writer_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(self->w->protocol->closed));
    CA_RETURN(ca_none());
    CA_END;
}

static ca_coro *writer_frame_new(const ca_cframe_type *type, ca_stream_writer *w) {
    writer_frame *f = (writer_frame *)ca_cframe_new(type, sizeof(writer_frame));
    if (f == NULL) return NULL;
    f->w = ca_incref(w);
    return &f->cf.co;
}

ca_coro *ca_stream_writer_drain(ca_stream_writer *w) { return writer_frame_new(&stream_drain_type, w); }
ca_coro *ca_stream_writer_wait_closed(ca_stream_writer *w) { return writer_frame_new(&stream_wait_closed_type, w); }

/* MARK: - open_connection */

/* open_connection's future: resolves to the writer once create_connection
 * resolved to the transport; cancelling it cancels the connection. */
typedef struct open_conn {
    ca_future fut;
    ca_future *inner;           /* create_connection's future (strong) */
    stream_protocol *protocol;  /* made by the factory (strong) */
    size_t limit;
} open_conn;

static bool open_conn_cancel(ca_future *fut, const char *msg);
static void open_conn_dealloc(ca_object *op);
static const ca_future_type open_conn_type = {
    .ft_base = {"Future", sizeof(open_conn), open_conn_dealloc, &ca_FutureType},
    .ft_cancel = open_conn_cancel,
};

static bool open_conn_cancel(ca_future *fut, const char *msg) {
    if (!ca_future_cancel_impl(fut, msg)) return false;
    open_conn *oc = (open_conn *)fut;
    if (oc->inner != NULL) ca_future_cancel(oc->inner, msg);
    return true;
}

static void open_conn_dealloc(ca_object *op) {
    open_conn *oc = (open_conn *)op;
    if (CA_UNLIKELY(oc->fut.fut_log_tb)) {
        ca_future_finalize(&oc->fut);
        if (op->ob_refcnt > 0) return;
    }
    ca_decref(oc->inner);
    ca_decref(oc->protocol);
    ca_future_clear_head(&oc->fut);
    ca_small_free(oc, sizeof *oc);
}

static ca_protocol *open_conn_factory(void *arg) {
    open_conn *oc = arg;
    stream_protocol *p = stream_protocol_new(oc->fut.fut_loop, oc->limit, NULL);
    if (p == NULL) return NULL;
    CA_CLEAR(oc->protocol);
    oc->protocol = ca_incref(p);
    return &p->proto; /* the transport takes the factory's reference */
}

static void open_conn_inner_done(ca_future *inner, void *arg) {
    open_conn *oc = arg;
    ca_value v;
    ca_error *err = ca_future_result(inner, &v);
    if (oc->fut.fut_state != CA_FUTURE_PENDING) {
        if (err == NULL && v.kind == CA_VALUE_OBJECT) ca_transport_close((ca_transport *)v.u.obj);
        ca_decref(err);
        return;
    }
    if (err != NULL) {
        ca_decref(ca_future_set_exception_impl(&oc->fut, err));
        ca_decref(err);
        return;
    }
    ca_transport *t = (ca_transport *)v.u.obj;
    ca_stream_writer *w = oc->protocol ? writer_new(t, oc->protocol, oc->protocol->reader) : NULL;
    if (w == NULL) {
        ca_error *e = ca_error_new(&ca_MemoryError, NULL);
        ca_decref(ca_future_set_exception_impl(&oc->fut, e));
        ca_decref(e);
        ca_transport_close(t);
        return;
    }
    ca_decref(ca_future_set_result_impl(&oc->fut, ca_obj(w)));
}

static ca_error *open_conn_start(ca_loop *loop, const char *host, uint16_t port, const char *path, size_t limit,
                                 ca_future **out) {
    *out = NULL;
    open_conn *oc = ca_small_alloc(sizeof *oc);
    if (oc == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_object_init(oc, &open_conn_type.ft_base);
    ca_future_init_head(&oc->fut, loop);
    oc->inner = NULL;
    oc->protocol = NULL;
    oc->limit = limit;
    ca_error *err = path != NULL ? ca_loop_create_unix_connection(loop, open_conn_factory, oc, path, &oc->inner)
                                 : ca_loop_create_connection(loop, open_conn_factory, oc, host, port, &oc->inner);
    if (err == NULL)
        err = ca_future_add_done_callback(oc->inner, open_conn_inner_done, ca_incref(oc), ca_release_object, NULL);
    if (err != NULL) {
        if (oc->inner != NULL) ca_future_cancel(oc->inner, NULL);
        ca_decref(oc);
        return err;
    }
    *out = &oc->fut;
    return NULL;
}

ca_error *ca_open_connection(ca_loop *loop, const char *host, uint16_t port, size_t limit, ca_future **out) {
    return open_conn_start(loop, host, port, NULL, limit, out);
}

ca_error *ca_open_unix_connection(ca_loop *loop, const char *path, size_t limit, ca_future **out) {
    return open_conn_start(loop, NULL, 0, path, limit, out);
}

/* MARK: - start_server */

static ca_protocol *server_stream_factory(void *arg) {
    stream_server_ctx *ctx = arg;
    stream_protocol *p = stream_protocol_new(ctx->loop, ctx->limit, ctx);
    return p ? &p->proto : NULL;
}

static void server_ctx_release(void *arg) {
    stream_server_ctx *ctx = arg;
    if (ctx->arg_release != NULL) ctx->arg_release(ctx->arg);
    ca_decref(ctx->loop);
    ca_free(ctx);
}

static ca_error *start_server_common(ca_loop *loop, ca_stream_client_cb cb, void *arg, ca_release_fn release,
                                     const char *host, uint16_t port, const char *path, size_t limit,
                                     const ca_server_options *opts, ca_server **out) {
    *out = NULL;
    stream_server_ctx *ctx = ca_malloc(sizeof *ctx);
    if (ctx == NULL) {
        if (release != NULL) release(arg);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    *ctx = (stream_server_ctx){ca_incref(loop), cb, arg, release, limit};
    ca_error *err = path != NULL
                        ? ca_loop_create_unix_server(loop, server_stream_factory, ctx, path, opts, out)
                        : ca_loop_create_server(loop, server_stream_factory, ctx, host, port, opts, out);
    if (err != NULL) {
        server_ctx_release(ctx);
        return err;
    }
    ca_server_set_factory_release(*out, server_ctx_release);
    return NULL;
}

ca_error *ca_start_server(ca_loop *loop, ca_stream_client_cb cb, void *arg, const char *host, uint16_t port,
                          size_t limit, const ca_server_options *opts, ca_server **out) {
    return start_server_common(loop, cb, arg, NULL, host, port, NULL, limit, opts, out);
}

ca_error *ca_start_unix_server(ca_loop *loop, ca_stream_client_cb cb, void *arg, const char *path, size_t limit,
                               const ca_server_options *opts, ca_server **out) {
    return start_server_common(loop, cb, arg, NULL, NULL, 0, path, limit, opts, out);
}

ca_error *ca_start_server_owning(ca_loop *loop, ca_stream_client_cb cb, void *arg, ca_release_fn release,
                                 const char *host, uint16_t port, size_t limit, const ca_server_options *opts,
                                 ca_server **out) {
    return start_server_common(loop, cb, arg, release, host, port, NULL, limit, opts, out);
}

ca_error *ca_start_unix_server_owning(ca_loop *loop, ca_stream_client_cb cb, void *arg, ca_release_fn release,
                                      const char *path, size_t limit, const ca_server_options *opts,
                                      ca_server **out) {
    return start_server_common(loop, cb, arg, release, NULL, 0, path, limit, opts, out);
}
