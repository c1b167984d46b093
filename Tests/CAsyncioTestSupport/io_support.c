/*
 * io_support.c — the servers, clients, runners and fault hook of ts_io.h.
 */
#include "ts_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define NS_PER_S 1000000000.0

/* MARK: - Loops, limits, runners */

ca_error *ts_io_loop_new(ca_backend_kind backend, bool virtual_clock, ca_loop **out) {
    ca_loop_config cfg = {.backend = backend, .virtual_clock = virtual_clock};
    return ca_loop_new(&cfg, out);
}

uint64_t ts_io_raise_nofile(uint64_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
    if (rl.rlim_cur < want) {
        rlim_t target = want;
        if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max) target = rl.rlim_max;
        rl.rlim_cur = target;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur;
}

bool ts_io_uring_available(char *why, size_t size) {
    struct io_uring ring;
    int ret = io_uring_queue_init(4, &ring, 0);
    if (ret < 0) {
        snprintf(why, size, "io_uring_setup refused: %s", strerror(-ret));
        return false;
    }
    io_uring_queue_exit(&ring);
    return true;
}

static void stop_loop_cb(void *arg) { ca_loop_stop(arg); }

ca_error *ts_io_run_until(ca_loop *loop, ca_future *fut, double timeout_s) {
    ca_handle *h = NULL;
    ca_error *err = ca_loop_call_later(loop, (int64_t)(timeout_s * NS_PER_S), stop_loop_cb, loop, NULL, NULL, &h);
    if (err != NULL) return err;
    err = ca_loop_run_until_complete(loop, fut);
    ca_handle_cancel(h);
    ca_decref(h);
    return err;
}

typedef struct all_state {
    ca_future *agg;
    size_t left;
} all_state;

static void all_one_done(ca_future *fut, void *arg) {
    all_state *s = arg;
    if (--s->left == 0 && !ca_future_done(s->agg)) ca_decref(ca_future_set_result(s->agg, ca_none()));
}

ca_error *ts_io_run_all(ca_loop *loop, ca_future *const *futs, size_t n, double timeout_s) {
    all_state s = {ca_future_new(loop), n};
    if (s.agg == NULL) return ca_error_new(&ca_MemoryError, NULL);
    if (n == 0) ca_decref(ca_future_set_result(s.agg, ca_none()));
    for (size_t i = 0; i < n; i++) {
        ca_error *err = ca_future_add_done_callback(futs[i], all_one_done, &s, NULL, NULL);
        if (err != NULL) {
            ca_decref(s.agg);
            return err;
        }
    }
    ca_error *err = ts_io_run_until(loop, s.agg, timeout_s);
    for (size_t i = 0; i < n; i++) ca_future_remove_done_callback(futs[i], all_one_done, &s);
    bool done = ca_future_done(s.agg);
    ca_decref(s.agg);
    if (err != NULL && !done) {
        ca_decref(err);
        return ca_error_format(&ca_TimeoutError, "%zu of %zu futures still pending after %.1f s", s.left, n,
                               timeout_s);
    }
    return err;
}

ca_error *ts_io_run_for(ca_loop *loop, double seconds) {
    ca_handle *h = NULL;
    ca_error *err = ca_loop_call_later(loop, (int64_t)(seconds * NS_PER_S), stop_loop_cb, loop, NULL, NULL, &h);
    if (err != NULL) return err;
    err = ca_loop_run_forever(loop);
    ca_handle_cancel(h);
    ca_decref(h);
    return err;
}

typedef struct flag_timer {
    ca_loop *loop;
    bool fired;
} flag_timer;

static void flag_timer_cb(void *arg) {
    flag_timer *ft = arg;
    ft->fired = true;
    ca_loop_stop(ft->loop);
}

bool ts_io_run_until_flag(ca_loop *loop, const int *flag, double timeout_s) {
    flag_timer ft = {loop, false};
    ca_handle *h = NULL;
    ca_error *err = ca_loop_call_later(loop, (int64_t)(timeout_s * NS_PER_S), flag_timer_cb, &ft, NULL, NULL, &h);
    if (err != NULL) {
        ca_decref(err);
        return false;
    }
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE) && !ft.fired) {
        err = ca_loop_run_forever(loop);
        if (err != NULL) {
            ca_decref(err);
            break;
        }
    }
    ca_handle_cancel(h);
    ca_decref(h);
    return __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0;
}

/* MARK: - Data */

static inline uint8_t pattern_byte(uint64_t seed, uint64_t i) {
    uint64_t x = (i + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    x ^= x >> 29;
    return (uint8_t)(x ^ (x >> 7));
}

void ts_io_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset) {
    for (size_t i = 0; i < len; i++) buf[i] = pattern_byte(seed, offset + i);
}

int64_t ts_io_pattern_mismatch(const uint8_t *buf, size_t len, uint64_t seed, uint64_t offset) {
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern_byte(seed, offset + i)) return (int64_t)i;
    return -1;
}

size_t ts_io_value_bytes(const ca_value *v, const uint8_t **data) {
    *data = NULL;
    if (v->kind != CA_VALUE_OBJECT || !ca_bytes_check(v->u.obj)) return 0;
    ca_bytes *b = (ca_bytes *)v->u.obj;
    *data = b->data;
    return b->len;
}

/* MARK: - Protocol servers */

typedef struct ts_proto {
    ca_protocol proto;
    ts_server_stats *stats;
    ca_transport *t;        /* borrowed between made and lost */
    uint8_t *ubuf;          /* BufferedProtocol buffer */
} ts_proto;

#define TS_UBUF 4096

static inline ts_proto *tp_of(ca_protocol *p) { return (ts_proto *)p; }

static ca_error *tp_flood(ts_proto *p) {
    uint8_t chunk[16384];
    uint64_t left = p->stats->flood_bytes, off = 0;
    while (left > 0) {
        size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
        ts_io_pattern(chunk, n, 7, off);
        ca_error *err = ca_transport_write(p->t, chunk, n);
        if (err != NULL) return err;
        left -= n;
        off += n;
    }
    ca_transport_close(p->t);
    return NULL;
}

static ca_error *tp_connection_made(ca_protocol *self, ca_transport *t) {
    ts_proto *p = tp_of(self);
    p->t = t;
    p->stats->made++;
    ca_decref(p->stats->last_transport);
    p->stats->last_transport = ca_incref(t);
    if (p->stats->mode == TS_SERVER_PAUSED_SINK) ca_transport_pause_reading(t);
    if (p->stats->mode == TS_SERVER_FLOOD) return tp_flood(p);
    return NULL;
}

static ca_error *tp_data_received(ca_protocol *self, const void *data, size_t len) {
    ts_proto *p = tp_of(self);
    p->stats->bytes_in += len;
    if (p->stats->mode == TS_SERVER_ECHO || p->stats->mode == TS_SERVER_ECHO_BYE)
        return ca_transport_write(p->t, data, len);
    return NULL;
}

static ca_error *tp_get_buffer(ca_protocol *self, size_t sizehint, void **buf, size_t *len) {
    ts_proto *p = tp_of(self);
    *buf = p->ubuf;
    *len = TS_UBUF;
    return NULL;
}

static ca_error *tp_buffer_updated(ca_protocol *self, size_t nbytes) {
    ts_proto *p = tp_of(self);
    p->stats->bytes_in += nbytes;
    return ca_transport_write(p->t, p->ubuf, nbytes);
}

static ca_error *tp_eof_received(ca_protocol *self, bool *keep_open) {
    ts_proto *p = tp_of(self);
    p->stats->eofs++;
    if (p->stats->mode == TS_SERVER_ECHO_BYE) {
        *keep_open = true;
        ca_error *err = ca_transport_write(p->t, "BYE", 3);
        ca_transport_close(p->t);
        return err;
    }
    *keep_open = false;
    return NULL;
}

static ca_error *tp_connection_lost(ca_protocol *self, ca_error *exc) {
    ts_proto *p = tp_of(self);
    p->stats->lost++;
    if (exc != NULL) {
        p->stats->lost_with_error++;
        ca_error_describe(exc, p->stats->last_error, sizeof p->stats->last_error);
    }
    p->t = NULL;
    return NULL;
}

static ca_error *tp_pause_writing(ca_protocol *self) {
    tp_of(self)->stats->pauses++;
    return NULL;
}

static ca_error *tp_resume_writing(ca_protocol *self) {
    tp_of(self)->stats->resumes++;
    return NULL;
}

static void tp_release(ca_protocol *self) {
    ts_proto *p = tp_of(self);
    free(p->ubuf);
    free(p);
}

static const ca_protocol_ops tp_ops = {
    .connection_made = tp_connection_made,
    .data_received = tp_data_received,
    .eof_received = tp_eof_received,
    .connection_lost = tp_connection_lost,
    .pause_writing = tp_pause_writing,
    .resume_writing = tp_resume_writing,
    .release = tp_release,
};

static const ca_protocol_ops tp_buffered_ops = {
    .connection_made = tp_connection_made,
    .get_buffer = tp_get_buffer,
    .buffer_updated = tp_buffer_updated,
    .eof_received = tp_eof_received,
    .connection_lost = tp_connection_lost,
    .pause_writing = tp_pause_writing,
    .resume_writing = tp_resume_writing,
    .release = tp_release,
};

static ca_protocol *tp_factory(void *arg) {
    ts_server_stats *stats = arg;
    ts_proto *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->stats = stats;
    if (stats->mode == TS_SERVER_BUFFERED_ECHO) {
        p->proto.ops = &tp_buffered_ops;
        p->ubuf = malloc(TS_UBUF);
        if (p->ubuf == NULL) {
            free(p);
            return NULL;
        }
    } else {
        p->proto.ops = &tp_ops;
    }
    return &p->proto;
}

ca_error *ts_server_start(ca_loop *loop, const char *host, const char *unix_path, ts_server_stats *stats,
                          ca_server **out) {
    ca_server_options opts = {.backlog = stats->backlog};
    if (unix_path != NULL) return ca_loop_create_unix_server(loop, tp_factory, stats, unix_path, &opts, out);
    return ca_loop_create_server(loop, tp_factory, stats, host ? host : "127.0.0.1", 0, &opts, out);
}

void ts_server_stats_clear(ts_server_stats *stats) { CA_CLEAR(stats->last_transport); }

/* MARK: - Stream server */

typedef struct stream_echo_frame {
    ca_cframe cf;
    ca_stream_reader *r;
    ca_stream_writer *w;
    ts_server_stats *stats;
    ca_value data;
} stream_echo_frame;

static void stream_echo_finalize(stream_echo_frame *f) {
    CA_CLEAR(f->r);
    CA_CLEAR(f->w);
    ca_value_clear(&f->data);
}

CA_CORO_TYPE(stream_echo_type, stream_echo_frame, stream_echo, stream_echo_finalize);

CA_CORO_BODY(stream_echo, stream_echo_frame) {
    const uint8_t *d;
    size_t n;
    ca_error *err;
    CA_BEGIN;
    for (;;) {
        CA_AWAIT_CORO(ca_stream_reader_read(self->r, 65536));
        ca_value_clear(&self->data);
        self->data = CA_CORO_RESULT();
        CA_CORO_RESULT() = ca_none();
        n = ts_io_value_bytes(&self->data, &d);
        if (n == 0) break;
        self->stats->bytes_in += n;
        err = ca_stream_writer_write(self->w, d, n);
        if (err != NULL) CA_RAISE(err);
        CA_AWAIT_CORO(ca_stream_writer_drain(self->w));
    }
    self->stats->eofs++;
    ca_stream_writer_close(self->w);
    CA_AWAIT_CORO(ca_stream_writer_wait_closed(self->w));
    self->stats->lost++;
    CA_END;
}

static ca_coro *stream_echo_cb(ca_stream_reader *r, ca_stream_writer *w, void *arg) {
    ts_server_stats *stats = arg;
    stats->made++;
    stream_echo_frame *f = CA_CORO_NEW(stream_echo_type, stream_echo_frame);
    if (f == NULL) return NULL;
    f->r = ca_incref(r);
    f->w = ca_incref(w);
    f->stats = stats;
    return &f->cf.co;
}

ca_error *ts_stream_server_start(ca_loop *loop, const char *host, const char *unix_path, ts_server_stats *stats,
                                 ca_server **out) {
    if (unix_path != NULL) return ca_start_unix_server(loop, stream_echo_cb, stats, unix_path, 0, NULL, out);
    return ca_start_server(loop, stream_echo_cb, stats, host ? host : "127.0.0.1", 0, 0, NULL, out);
}

/* MARK: - Stream clients */

typedef struct echo_client_frame {
    ca_cframe cf;
    char host[64];
    char path[108];
    uint16_t port;
    bool unix_;
    size_t size;
    size_t chunk;
    size_t sent;
    uint64_t seed;
    uint64_t *max_buffer;
    uint64_t *progress;
    ca_stream_writer *w;
    uint8_t *buf;
    ca_value got;
} echo_client_frame;

static void echo_client_finalize(echo_client_frame *f) {
    CA_CLEAR(f->w);
    free(f->buf);
    f->buf = NULL;
    ca_value_clear(&f->got);
}

static ca_error *open_for(echo_client_frame *self, ca_future **fut) {
    if (self->unix_) return ca_open_unix_connection(ca_get_running_loop(), self->path, 0, fut);
    return ca_open_connection(ca_get_running_loop(), self->host, self->port, 0, fut);
}

CA_CORO_TYPE(echo_client_type, echo_client_frame, echo_client, echo_client_finalize);

CA_CORO_BODY(echo_client, echo_client_frame) {
    ca_error *err;
    ca_future *fut;
    size_t n;
    const uint8_t *d;
    CA_BEGIN;
    err = open_for(self, &fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT(fut);
    self->w = (ca_stream_writer *)ca_incref(CA_RESULT().u.obj);
    while (self->sent < self->size) {
        n = self->size - self->sent < self->chunk ? self->size - self->sent : self->chunk;
        ts_io_pattern(self->buf, n, self->seed, self->sent);
        err = ca_stream_writer_write(self->w, self->buf, n);
        if (err != NULL) CA_RAISE(err);
        self->sent += n;
        CA_AWAIT_CORO(ca_stream_writer_drain(self->w));
        if (self->max_buffer != NULL) {
            size_t b = ca_transport_get_write_buffer_size(ca_stream_writer_transport(self->w));
            if (b > *self->max_buffer) *self->max_buffer = b;
        }
    }
    CA_AWAIT_CORO(ca_stream_reader_readexactly(ca_stream_writer_reader(self->w), (int64_t)self->size));
    self->got = CA_CORO_RESULT();
    CA_CORO_RESULT() = ca_none();
    n = ts_io_value_bytes(&self->got, &d);
    if (n != self->size) CA_RAISE(ca_error_format(&ca_ValueError, "echo of %zu bytes came back as %zu", self->size, n));
    if (ts_io_pattern_mismatch(d, n, self->seed, 0) >= 0)
        CA_RAISE(ca_error_format(&ca_ValueError, "echo differs at byte %lld",
                                 (long long)ts_io_pattern_mismatch(d, n, self->seed, 0)));
    ca_stream_writer_close(self->w);
    CA_AWAIT_CORO(ca_stream_writer_wait_closed(self->w));
    CA_RETURN(ca_int((int64_t)self->size));
    CA_END;
}

ca_coro *ts_stream_echo_client(const char *host, uint16_t port, const char *unix_path, size_t size, size_t chunk,
                               uint64_t seed, uint64_t *max_buffer) {
    echo_client_frame *f = CA_CORO_NEW(echo_client_type, echo_client_frame);
    if (f == NULL) return NULL;
    snprintf(f->host, sizeof f->host, "%s", host ? host : "127.0.0.1");
    if (unix_path != NULL) {
        snprintf(f->path, sizeof f->path, "%s", unix_path);
        f->unix_ = true;
    }
    f->port = port;
    f->size = size;
    f->chunk = chunk ? chunk : 65536;
    f->seed = seed;
    f->max_buffer = max_buffer;
    f->buf = malloc(f->chunk);
    if (f->buf == NULL) {
        ca_decref(f);
        return NULL;
    }
    return &f->cf.co;
}

CA_CORO_TYPE(send_client_type, echo_client_frame, send_client, echo_client_finalize);

CA_CORO_BODY(send_client, echo_client_frame) {
    ca_error *err;
    ca_future *fut;
    size_t n;
    CA_BEGIN;
    err = ca_open_connection(ca_get_running_loop(), "127.0.0.1", self->port, 0, &fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT(fut);
    self->w = (ca_stream_writer *)ca_incref(CA_RESULT().u.obj);
    while (self->sent < self->size) {
        n = self->size - self->sent < self->chunk ? self->size - self->sent : self->chunk;
        ts_io_pattern(self->buf, n, self->seed, self->sent);
        err = ca_stream_writer_write(self->w, self->buf, n);
        if (err != NULL) CA_RAISE(err);
        self->sent += n;
        *self->progress = self->sent;
        CA_AWAIT_CORO(ca_stream_writer_drain(self->w));
        size_t b = ca_transport_get_write_buffer_size(ca_stream_writer_transport(self->w));
        if (b > *self->max_buffer) *self->max_buffer = b;
    }
    ca_stream_writer_close(self->w);
    CA_RETURN(ca_int((int64_t)self->size));
    CA_END;
}

ca_coro *ts_stream_send_client(uint16_t port, size_t size, size_t chunk, uint64_t *progress, uint64_t *max_buffer) {
    echo_client_frame *f = CA_CORO_NEW(send_client_type, echo_client_frame);
    if (f == NULL) return NULL;
    f->port = port;
    f->size = size;
    f->chunk = chunk ? chunk : 65536;
    f->seed = 3;
    f->max_buffer = max_buffer;
    f->progress = progress;
    f->buf = malloc(f->chunk);
    if (f->buf == NULL) {
        ca_decref(f);
        return NULL;
    }
    return &f->cf.co;
}

CA_CORO_TYPE(half_close_type, echo_client_frame, half_close_client, echo_client_finalize);

CA_CORO_BODY(half_close_client, echo_client_frame) {
    ca_error *err;
    ca_future *fut;
    size_t n;
    const uint8_t *d;
    CA_BEGIN;
    err = ca_open_connection(ca_get_running_loop(), "127.0.0.1", self->port, 0, &fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT(fut);
    self->w = (ca_stream_writer *)ca_incref(CA_RESULT().u.obj);
    ts_io_pattern(self->buf, self->size, self->seed, 0);
    err = ca_stream_writer_write(self->w, self->buf, self->size);
    if (err == NULL) err = ca_stream_writer_write_eof(self->w);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT_CORO(ca_stream_reader_read(ca_stream_writer_reader(self->w), -1));
    self->got = CA_CORO_RESULT();
    CA_CORO_RESULT() = ca_none();
    n = ts_io_value_bytes(&self->got, &d);
    if (n < 3 || ts_io_pattern_mismatch(d, n - 3, self->seed, 0) >= 0 || memcmp(d + n - 3, "BYE", 3) != 0)
        CA_RAISE(ca_error_format(&ca_ValueError, "half-close reply of %zu bytes is wrong", n));
    ca_stream_writer_close(self->w);
    CA_AWAIT_CORO(ca_stream_writer_wait_closed(self->w));
    CA_RETURN(ca_int((int64_t)self->size + 3));
    CA_END;
}

ca_coro *ts_stream_half_close_client(uint16_t port, size_t size, uint64_t seed) {
    echo_client_frame *f = CA_CORO_NEW(half_close_type, echo_client_frame);
    if (f == NULL) return NULL;
    f->port = port;
    f->size = size;
    f->seed = seed;
    f->buf = malloc(size ? size : 1);
    if (f->buf == NULL) {
        ca_decref(f);
        return NULL;
    }
    return &f->cf.co;
}

/* The reads client: a tiny interpreter of `ops`. */
typedef struct reads_frame {
    ca_cframe cf;
    uint16_t port;
    size_t limit;
    char *script;
    size_t script_len;
    char ops[128];
    size_t pos;
    char *out;
    size_t out_size;
    size_t out_len;
    ca_stream_writer *w;
    ca_error *err;
} reads_frame;

static void reads_finalize(reads_frame *f) {
    free(f->script);
    f->script = NULL;
    CA_CLEAR(f->w);
    CA_CLEAR(f->err);
}

static void reads_emit(reads_frame *f, const char *s, size_t n) {
    if (f->out_len > 0 && f->out_len + 1 < f->out_size) f->out[f->out_len++] = '|';
    for (size_t i = 0; i < n && f->out_len + 1 < f->out_size; i++) f->out[f->out_len++] = s[i];
    f->out[f->out_len] = '\0';
}

/* The next op: its letter and number (0 when none); false at the end. */
static bool reads_next(reads_frame *f, char *op, long *arg) {
    while (f->ops[f->pos] == ' ') f->pos++;
    if (f->ops[f->pos] == '\0') return false;
    *op = f->ops[f->pos++];
    char *end;
    *arg = strtol(&f->ops[f->pos], &end, 10);
    f->pos = (size_t)(end - f->ops);
    return true;
}

static ca_coro *reads_coro(reads_frame *f, char op, long arg) {
    ca_stream_reader *r = ca_stream_writer_reader(f->w);
    switch (op) {
    case 'l': return ca_stream_reader_readline(r);
    case 'u': return ca_stream_reader_readuntil(r, "\r\n", 2);
    case 'x': return ca_stream_reader_readexactly(r, arg);
    default: return ca_stream_reader_read(r, arg);
    }
}

CA_CORO_TYPE(reads_type, reads_frame, reads_client, reads_finalize);

CA_CORO_BODY(reads_client, reads_frame) {
    ca_error *err;
    ca_future *fut;
    char op;
    long arg;
    const uint8_t *d;
    size_t n;
    CA_BEGIN;
    err = ca_open_connection(ca_get_running_loop(), "127.0.0.1", self->port, self->limit, &fut);
    if (err != NULL) CA_RAISE(err);
    CA_AWAIT(fut);
    self->w = (ca_stream_writer *)ca_incref(CA_RESULT().u.obj);
    err = ca_stream_writer_write(self->w, self->script, self->script_len);
    if (err == NULL) err = ca_stream_writer_write_eof(self->w);
    if (err != NULL) CA_RAISE(err);
    while (reads_next(self, &op, &arg)) {
        CA_AWAIT_CORO_TRY(reads_coro(self, op, arg), self->err);
        if (self->err != NULL) {
            char line[200];
            const ca_error *e = self->err;
            int k = snprintf(line, sizeof line, "!%s", e->type->name);
            if (e->payload.kind == CA_VALUE_INT)
                k += snprintf(line + k, sizeof line - (size_t)k, ":%lld", (long long)e->payload.u.i);
            n = ts_io_value_bytes(&e->payload, &d);
            if (d != NULL) k += snprintf(line + k, sizeof line - (size_t)k, ":%.*s", (int)n, (const char *)d);
            reads_emit(self, line, (size_t)k);
            CA_CLEAR(self->err);
            continue;
        }
        n = ts_io_value_bytes(&CA_CORO_RESULT(), &d);
        reads_emit(self, (const char *)d, n);
    }
    ca_stream_writer_close(self->w);
    CA_RETURN(ca_int((int64_t)self->out_len));
    CA_END;
}

ca_coro *ts_stream_reads_client(uint16_t port, const char *script, size_t script_len, const char *ops, size_t limit,
                                char *out, size_t out_size) {
    reads_frame *f = CA_CORO_NEW(reads_type, reads_frame);
    if (f == NULL) return NULL;
    f->port = port;
    f->limit = limit;
    f->script = malloc(script_len ? script_len : 1);
    if (f->script == NULL) {
        ca_decref(f);
        return NULL;
    }
    memcpy(f->script, script, script_len);
    f->script_len = script_len;
    snprintf(f->ops, sizeof f->ops, "%s", ops);
    f->out = out;
    f->out_size = out_size;
    if (out_size > 0) out[0] = '\0';
    return &f->cf.co;
}

/* MARK: - Flood client */

typedef struct flood_proto {
    ca_protocol proto;
    ts_flood_stats *stats;
    ca_transport *t;
    bool paused;
} flood_proto;

static void flood_write(flood_proto *p) {
    static uint8_t chunk[65536];
    while (!p->paused && p->stats->written < p->stats->total && p->t != NULL) {
        uint64_t left = p->stats->total - p->stats->written;
        size_t n = left < sizeof chunk ? (size_t)left : sizeof chunk;
        ca_error *err = ca_transport_write(p->t, chunk, n);
        if (err != NULL) {
            ca_decref(err);
            return;
        }
        p->stats->written += n;
        size_t b = ca_transport_get_write_buffer_size(p->t);
        if (b > p->stats->max_buffer) p->stats->max_buffer = b;
    }
    if (p->stats->written == p->stats->total && p->t != NULL) ca_transport_close(p->t);
}

static ca_error *fp_made(ca_protocol *self, ca_transport *t) {
    flood_proto *p = (flood_proto *)self;
    p->t = t;
    p->stats->made++;
    p->stats->transport = ca_incref(t);
    flood_write(p);
    return NULL;
}

static ca_error *fp_pause(ca_protocol *self) {
    flood_proto *p = (flood_proto *)self;
    p->paused = true;
    p->stats->pauses++;
    return NULL;
}

static ca_error *fp_resume(ca_protocol *self) {
    flood_proto *p = (flood_proto *)self;
    p->paused = false;
    p->stats->resumes++;
    flood_write(p);
    return NULL;
}

static ca_error *fp_lost(ca_protocol *self, ca_error *exc) {
    flood_proto *p = (flood_proto *)self;
    p->stats->lost++;
    p->t = NULL;
    return NULL;
}

static void fp_release(ca_protocol *self) { free(self); }

static const ca_protocol_ops flood_ops = {
    .connection_made = fp_made,
    .connection_lost = fp_lost,
    .pause_writing = fp_pause,
    .resume_writing = fp_resume,
    .release = fp_release,
};

static ca_protocol *flood_factory(void *arg) {
    flood_proto *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->proto.ops = &flood_ops;
    p->stats = arg;
    return &p->proto;
}

ca_error *ts_flood_connect(ca_loop *loop, uint16_t port, ts_flood_stats *stats, ca_future **out) {
    return ca_loop_create_connection(loop, flood_factory, stats, "127.0.0.1", port, out);
}

void ts_flood_stats_clear(ts_flood_stats *stats) { CA_CLEAR(stats->transport); }

/* MARK: - Thread client */

static int64_t io_all(int fd, void *buf, size_t len, bool writing) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? send(fd, (const char *)buf + done, len - done, MSG_NOSIGNAL)
                            : recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (n == 0) break;
        done += (size_t)n;
    }
    return (int64_t)done;
}

int64_t ts_io_write_all(int fd, const void *buf, size_t len) { return io_all(fd, (void *)buf, len, true); }
int64_t ts_io_read_exactly(int fd, void *buf, size_t len) { return io_all(fd, buf, len, false); }

static void thread_fail(ts_thread_client *c, const char *call, int err) {
    if (c->err_no == 0) {
        c->err_no = err ? err : EPROTO;
        snprintf(c->failed_call, sizeof c->failed_call, "%s", call);
    }
}

static void *thread_client_main(void *arg) {
    ts_thread_client *c = arg;
    size_t chunk = c->chunk ? c->chunk : 65536;
    uint8_t *out = malloc(chunk), *in = malloc(chunk);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage addr;
    socklen_t alen;
    ts_io_loopback(c->port, &addr, &alen);
    struct timeval tv = {.tv_sec = 20};
    if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (out == NULL || in == NULL || fd < 0) {
        thread_fail(c, "setup", errno);
    } else if (connect(fd, (struct sockaddr *)&addr, alen) < 0) {
        thread_fail(c, "connect", errno);
    } else if (!c->half_close) {
        /* write a chunk, read its echo back, and so on */
        for (size_t off = 0; off < c->size && c->err_no == 0;) {
            size_t n = c->size - off < chunk ? c->size - off : chunk;
            ts_io_pattern(out, n, c->seed, off);
            int64_t w = ts_io_write_all(fd, out, n);
            if (w != (int64_t)n) {
                thread_fail(c, "send", w < 0 ? (int)-w : 0);
                break;
            }
            int64_t r = ts_io_read_exactly(fd, in, n);
            if (r > 0) c->received += (uint64_t)r;
            if (r != (int64_t)n) {
                thread_fail(c, "recv", r < 0 ? (int)-r : 0);
                break;
            }
            int64_t bad = ts_io_pattern_mismatch(in, n, c->seed, off);
            if (bad >= 0 && c->mismatch < 0) c->mismatch = (int64_t)off + bad;
            off += n;
        }
        if (c->reset_after_echo && c->err_no == 0) {
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
    } else {
        for (size_t off = 0; off < c->size && c->err_no == 0;) {
            size_t n = c->size - off < chunk ? c->size - off : chunk;
            ts_io_pattern(out, n, c->seed, off);
            int64_t w = ts_io_write_all(fd, out, n);
            if (w != (int64_t)n) thread_fail(c, "send", w < 0 ? (int)-w : 0);
            off += n;
        }
        shutdown(fd, SHUT_WR);
        /* everything back, then EOF: the echo and the server's "BYE" */
        uint64_t off = 0;
        for (;;) {
            ssize_t r = recv(fd, in, chunk, 0);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                thread_fail(c, "recv", errno);
                break;
            }
            if (r == 0) break;
            size_t check = off >= c->size ? 0 : (c->size - off < (size_t)r ? c->size - off : (size_t)r);
            int64_t bad = ts_io_pattern_mismatch(in, check, c->seed, off);
            if (bad >= 0 && c->mismatch < 0) c->mismatch = (int64_t)off + bad;
            off += (uint64_t)r;
        }
        c->received = off;
    }
    if (fd >= 0) close(fd);
    free(out);
    free(in);
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
    ca_decref(ca_loop_stop_threadsafe(c->loop));
    return NULL;
}

int ts_thread_client_start(ts_thread_client *c) {
    __atomic_store_n(&c->done, 0, __ATOMIC_RELEASE);
    c->received = 0;
    c->mismatch = -1;
    c->err_no = 0;
    c->failed_call[0] = '\0';
    pthread_t th;
    int rc = pthread_create(&th, NULL, thread_client_main, c);
    c->thread = (unsigned long)th;
    return rc;
}

void ts_thread_client_join(ts_thread_client *c) { pthread_join((pthread_t)c->thread, NULL); }

/* MARK: - Faults */

void ts_fault_hook(void *arg, ca_io_opcode opcode, int fd, size_t len, ca_io_fault_action *action) {
    ts_fault_script *s = arg;
    for (int i = 0; i < s->nrules; i++) {
        ts_fault_rule *r = &s->rules[i];
        if (r->opcode != (int)opcode) continue;
        if (r->skip > 0) {
            r->skip--;
            continue;
        }
        if (r->count == 0) continue;
        if (r->count > 0) r->count--;
        r->fired++;
        *action = r->action;
        return;
    }
}

/* MARK: - Raw sockets */

int ts_io_socketpair(int sv[2]) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    int fl = fcntl(sv[0], F_GETFL);
    fcntl(sv[0], F_SETFL, fl | O_NONBLOCK);
    return 0;
}

void ts_io_loopback(uint16_t port, struct sockaddr_storage *addr, socklen_t *len) {
    struct sockaddr_in *in = (struct sockaddr_in *)addr;
    memset(addr, 0, sizeof *addr);
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof *in;
}

int ts_io_listen(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    struct sockaddr_storage addr;
    socklen_t len;
    ts_io_loopback(0, &addr, &len);
    if (bind(fd, (struct sockaddr *)&addr, len) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    *port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return fd;
}

int ts_io_refusing_port(uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    struct sockaddr_storage addr;
    socklen_t len;
    ts_io_loopback(0, &addr, &len);
    if (bind(fd, (struct sockaddr *)&addr, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    len = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &len);
    *port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
    return fd;
}
