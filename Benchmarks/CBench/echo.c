/*
 * echo.c — the echo workload: servers in each style and the load client
 * (casyncio_echo.h).
 *
 * The raw servers are the physical-limit references: what a minimal C
 * program pays per request on this kernel, with nothing of ours in the
 * way. The core's servers must come close to them in CPU per request.
 */
#include "casyncio_echo.h"
#include "cab_internal.h"

#include <casyncio/casyncio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ECHO_READ_SIZE 65536

/* MARK: - Reporting to the parent */

static int report_fd = -1;

/* Formats `v` in decimal at `p`; returns the end. Async-signal-safe. */
static char *put_u64(char *p, uint64_t v) {
    char tmp[24];
    int n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n > 0) *p++ = tmp[--n];
    return p;
}

/* SIGUSR1: the parent asks for our CPU time; answered from the handler, so
 * whatever the loop is doing, with getrusage and write only. */
static void on_rusage_request(int sig) {
    int saved = errno;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    char line[80], *p = line;
    memcpy(p, "RUSAGE ", 7);
    p += 7;
    p = put_u64(p, (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec);
    *p++ = ' ';
    p = put_u64(p, (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec);
    *p++ = '\n';
    ssize_t w = write(report_fd, line, (size_t)(p - line));
    (void)w;
    errno = saved;
}

static void report_ready(uint16_t port) {
    struct sigaction sa = {.sa_handler = on_rusage_request, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    char line[32];
    int n = snprintf(line, sizeof line, "READY %u\n", port);
    ssize_t w = write(report_fd, line, (size_t)n);
    (void)w;
}

void cab_echo_report_ready(uint16_t port, int fd) {
    report_fd = fd;
    report_ready(port);
}

static int fail(char *err, size_t size, const char *what, ca_error *e) {
    char desc[200] = "";
    if (e != NULL) ca_error_describe(e, desc, sizeof desc);
    snprintf(err, size, "%s%s%s", what, e ? ": " : "", desc);
    ca_decref(e);
    return -1;
}

/* MARK: - c-protocol */

typedef struct echo_protocol {
    ca_protocol proto;
    ca_transport *t;
} echo_protocol;

static ca_error *ep_made(ca_protocol *self, ca_transport *t) {
    ((echo_protocol *)self)->t = t;
    return NULL;
}

static ca_error *ep_data(ca_protocol *self, const void *data, size_t len) {
    return ca_transport_write(((echo_protocol *)self)->t, data, len);
}

static void ep_release(ca_protocol *self) { free(self); }

static const ca_protocol_ops echo_protocol_ops = {
    .connection_made = ep_made,
    .data_received = ep_data,
    .release = ep_release,
};

ca_protocol *cab_echo_protocol_factory(void *arg) {
    echo_protocol *p = calloc(1, sizeof *p);
    if (p == NULL) return NULL;
    p->proto.ops = &echo_protocol_ops;
    return &p->proto;
}

/* MARK: - c-streams */

typedef struct stream_echo_frame {
    ca_cframe cf;
    ca_stream_reader *r;
    ca_stream_writer *w;
} stream_echo_frame;

static void stream_echo_finalize(stream_echo_frame *f) {
    CA_CLEAR(f->r);
    CA_CLEAR(f->w);
}

CA_CORO_TYPE(stream_echo_type, stream_echo_frame, stream_echo, stream_echo_finalize);

CA_CORO_BODY(stream_echo, stream_echo_frame) {
    ca_bytes *b;
    ca_error *err;
    CA_BEGIN;
    for (;;) {
        CA_AWAIT_CORO(ca_stream_reader_read(self->r, ECHO_READ_SIZE));
        b = (ca_bytes *)CA_CORO_RESULT().u.obj;
        if (b->len == 0) break;
        err = ca_stream_writer_write(self->w, b->data, b->len);
        if (err != NULL) CA_RAISE(err);
        CA_AWAIT_CORO(ca_stream_writer_drain(self->w));
    }
    ca_stream_writer_close(self->w);
    CA_END;
}

static ca_coro *stream_echo_cb(ca_stream_reader *r, ca_stream_writer *w, void *arg) {
    stream_echo_frame *f = CA_CORO_NEW(stream_echo_type, stream_echo_frame);
    if (f == NULL) return NULL;
    f->r = ca_incref(r);
    f->w = ca_incref(w);
    return &f->cf.co;
}

static void quiet_handler(ca_loop *loop, const ca_exception_context *c, void *arg) {}

static int core_server(bool streams, uint16_t port, char *err, size_t errsize) {
    ca_loop *loop = NULL;
    ca_error *e = ca_loop_new(NULL, &loop);
    if (e != NULL) return fail(err, errsize, "ca_loop_new", e);
    /* clients that vanish mid-request are not news here */
    ca_loop_set_exception_handler(loop, quiet_handler, NULL);
    ca_server_options opts = {.backlog = 1024};
    ca_server *server = NULL;
    e = streams ? ca_start_server(loop, stream_echo_cb, NULL, "127.0.0.1", port, 0, &opts, &server)
                : ca_loop_create_server(loop, cab_echo_protocol_factory, NULL, "127.0.0.1", port, &opts, &server);
    if (e != NULL) return fail(err, errsize, "create_server", e);
    report_ready(ca_server_get_port(server));
    e = ca_loop_run_forever(loop);
    return fail(err, errsize, "run_forever", e);
}

/* MARK: - raw: liburing */

enum { RAW_ACCEPT = 0, RAW_RECV = 1, RAW_SEND = 2 };

typedef struct raw_conn {
    int fd;
    uint32_t len;
    uint32_t sent;
    uint8_t buf[ECHO_READ_SIZE];
} raw_conn;

static inline uint64_t raw_tag(raw_conn *c, int op) { return (uint64_t)(uintptr_t)c | (uint64_t)op; }

static struct io_uring_sqe *raw_sqe(struct io_uring *ring) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (sqe == NULL) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static void raw_recv(struct io_uring *ring, raw_conn *c) {
    struct io_uring_sqe *sqe = raw_sqe(ring);
    io_uring_prep_recv(sqe, c->fd, c->buf, sizeof c->buf, 0);
    io_uring_sqe_set_data64(sqe, raw_tag(c, RAW_RECV));
}

static void raw_send(struct io_uring *ring, raw_conn *c) {
    struct io_uring_sqe *sqe = raw_sqe(ring);
    io_uring_prep_send(sqe, c->fd, c->buf + c->sent, c->len - c->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, raw_tag(c, RAW_SEND));
}

static void raw_accept(struct io_uring *ring, int lfd) {
    struct io_uring_sqe *sqe = raw_sqe(ring);
    io_uring_prep_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, RAW_ACCEPT);
}

static int listen_on(uint16_t port, uint16_t *bound, char *err, size_t errsize) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
        snprintf(err, errsize, "listen: %s", strerror(errno));
        return -1;
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *bound = ntohs(a.sin_port);
    return fd;
}

static int raw_uring_server(uint16_t port, char *err, size_t errsize) {
    uint16_t bound;
    int lfd = listen_on(port, &bound, err, errsize);
    if (lfd < 0) return -1;
    struct io_uring ring;
    struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
    int ret = io_uring_queue_init_params(256, &ring, &p);
    if (ret == -EINVAL) ret = io_uring_queue_init(256, &ring, 0);
    if (ret < 0) {
        snprintf(err, errsize, "io_uring_queue_init: %s", strerror(-ret));
        return -1;
    }
    raw_accept(&ring, lfd);
    report_ready(bound);
    for (;;) {
        ret = io_uring_submit_and_wait(&ring, 1);
        if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            snprintf(err, errsize, "io_uring_submit_and_wait: %s", strerror(-ret));
            return -1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            seen++;
            uint64_t ud = cqe->user_data;
            int op = (int)(ud & 3);
            raw_conn *c = (raw_conn *)(uintptr_t)(ud & ~(uint64_t)3);
            if (op == RAW_ACCEPT) {
                if (cqe->res >= 0) {
                    int one = 1;
                    setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    raw_conn *nc = malloc(sizeof *nc);
                    nc->fd = cqe->res;
                    raw_recv(&ring, nc);
                }
                raw_accept(&ring, lfd);
            } else if (op == RAW_RECV) {
                if (cqe->res <= 0) {
                    close(c->fd);
                    free(c);
                } else {
                    c->len = (uint32_t)cqe->res;
                    c->sent = 0;
                    raw_send(&ring, c);
                }
            } else {
                if (cqe->res < 0) {
                    close(c->fd);
                    free(c);
                } else if ((c->sent += (uint32_t)cqe->res) < c->len) {
                    raw_send(&ring, c);
                } else {
                    raw_recv(&ring, c);
                }
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}

/* MARK: - raw-epoll */

static int raw_epoll_server(uint16_t port, char *err, size_t errsize) {
    uint16_t bound;
    int lfd = listen_on(port, &bound, err, errsize);
    if (lfd < 0) return -1;
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    static uint8_t buf[ECHO_READ_SIZE];
    report_ready(bound);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r <= 0) {
                close(fd);
                continue;
            }
            for (ssize_t off = 0; off < r;) {
                ssize_t w = write(fd, buf + off, (size_t)(r - off));
                if (w < 0 && errno == EINTR) continue;
                if (w <= 0) break;
                off += w;
            }
        }
    }
}

int cab_echo_server(const char *impl, uint16_t port, int fd, char *err, size_t errsize) {
    report_fd = fd;
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(impl, "c-protocol") == 0) return core_server(false, port, err, errsize);
    if (strcmp(impl, "c-streams") == 0) return core_server(true, port, err, errsize);
    if (strcmp(impl, "raw") == 0) return raw_uring_server(port, err, errsize);
    if (strcmp(impl, "raw-epoll") == 0) return raw_epoll_server(port, err, errsize);
    snprintf(err, errsize, "unknown server '%s'", impl);
    return -1;
}

/* MARK: - The client */

typedef struct client_conn {
    int fd;
    size_t sent;
    size_t received;
    uint64_t t0;
    uint8_t *rbuf;
} client_conn;

/* Sends what is left of the message; false on a failure. */
static bool client_send(client_conn *c, const uint8_t *msg, size_t size) {
    while (c->sent < size) {
        ssize_t w = send(c->fd, msg + c->sent, size - c->sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return true; /* EPOLLOUT finishes it */
        if (w <= 0) return false;
        c->sent += (size_t)w;
    }
    return true;
}

int cab_echo_client(const cab_echo_client_options *o, cab_echo_client_result *r) {
    memset(r, 0, sizeof *r);
    int n = o->connections;
    size_t size = o->size;
    uint8_t *msg = malloc(size);
    client_conn *conns = calloc((size_t)n, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int rc = -1;
    if (msg == NULL || conns == NULL || ep < 0) {
        snprintf(r->error, sizeof r->error, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < size; i++) msg[i] = (uint8_t)(i * 131 + 7);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(o->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        client_conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        c->rbuf = malloc(size);
        if (c->fd < 0 || c->rbuf == NULL || connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) {
            snprintf(r->error, sizeof r->error, "connect %d: %s", i, strerror(errno));
            goto done;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t start = cab_now_ns();
    uint64_t window_start = start + (uint64_t)(o->warmup_s * 1e9);
    uint64_t window_end = window_start + (uint64_t)(o->duration_s * 1e9);
    bool in_window = false;
    for (int i = 0; i < n; i++) {
        conns[i].t0 = cab_now_ns();
        if (!client_send(&conns[i], msg, size)) {
            snprintf(r->error, sizeof r->error, "send: %s", strerror(errno));
            goto done;
        }
    }
    for (;;) {
        uint64_t t = cab_now_ns();
        if (!in_window && t >= window_start) {
            in_window = true;
            if (o->mark) o->mark(o->mark_arg, 0);
            window_start = cab_now_ns();
            window_end = window_start + (uint64_t)(o->duration_s * 1e9);
        }
        if (in_window && t >= window_end) break;
        struct epoll_event evs[256];
        int k = epoll_wait(ep, evs, 256, 50);
        if (k < 0 && errno != EINTR) {
            snprintf(r->error, sizeof r->error, "epoll_wait: %s", strerror(errno));
            goto done;
        }
        for (int e = 0; e < k; e++) {
            client_conn *c = &conns[evs[e].data.u32];
            if ((evs[e].events & EPOLLOUT) && !client_send(c, msg, size)) {
                snprintf(r->error, sizeof r->error, "send: %s", strerror(errno));
                goto done;
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) continue;
            for (;;) {
                ssize_t got = recv(c->fd, c->rbuf + c->received, size - c->received, 0);
                if (got < 0 && errno == EINTR) continue;
                if (got < 0 && errno == EAGAIN) break;
                if (got <= 0) {
                    snprintf(r->error, sizeof r->error, "the server closed a connection (%s)",
                             got < 0 ? strerror(errno) : "EOF");
                    goto done;
                }
                c->received += (size_t)got;
                if (c->received < size) continue;
                uint64_t t1 = cab_now_ns();
                if (memcmp(c->rbuf, msg, size) != 0) {
                    snprintf(r->error, sizeof r->error, "the echo differs from the message");
                    goto done;
                }
                if (in_window && t1 < window_end) {
                    if (o->record) o->record(o->record_arg, t1 - c->t0);
                    r->requests++;
                }
                c->received = c->sent = 0;
                c->t0 = t1;
                if (!client_send(c, msg, size)) {
                    snprintf(r->error, sizeof r->error, "send: %s", strerror(errno));
                    goto done;
                }
            }
        }
    }
    if (o->mark) o->mark(o->mark_arg, 1);
    r->seconds = (double)(cab_now_ns() - window_start) / 1e9;
    r->rps = r->seconds > 0 ? (double)r->requests / r->seconds : 0;
    rc = r->requests > 0 ? 0 : -1;
    if (rc != 0) snprintf(r->error, sizeof r->error, "no request completed in the window");
done:
    if (conns != NULL) {
        for (int i = 0; i < n; i++) {
            if (conns[i].fd > 0) close(conns[i].fd);
            free(conns[i].rbuf);
        }
    }
    if (ep >= 0) close(ep);
    free(conns);
    free(msg);
    return rc;
}

int cab_pin_to_cpu(int pid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(pid, sizeof set, &set) == 0 ? 0 : -errno;
}
