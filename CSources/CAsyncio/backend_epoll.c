/*
 * backend_epoll.c — the epoll backend, for kernels and sandboxes that refuse
 * io_uring_setup (Docker's default seccomp profile): an epoll instance with a
 * non-blocking eventfd registered for wake-ups.
 *
 * Operations are the same as io_uring's, emulated with readiness: a
 * submitted op is attempted at the next poll (the non-blocking syscall);
 * when it would block it waits on its fd's read or write list until an
 * edge says the fd is ready, then is attempted again. Each fd is registered
 * once, edge-triggered for both directions, so steady-state I/O costs no
 * epoll_ctl. An fd's `rd_ready` remembers an edge nobody consumed yet, which
 * lets CA_IO_F_POLL_FIRST skip a syscall that would only say EAGAIN.
 */
#include "backend.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <casyncio/error.h>
#include <casyncio/object.h>

/* Events taken per epoll_wait; more stay queued for the next iteration. */
#define EPOLL_BATCH 64

/* epoll_data of the wake-up eventfd; every other registration carries its fd. */
#define EPOLL_WAKE_TAG UINT64_MAX

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

/* glibc declares epoll_pwait2 from 2.35; the kernel may still refuse it. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HAVE_EPOLL_PWAIT2 1
#endif

/* ca_io_op.bflags: where a waiting op is linked, plus two markers. */
#define WHERE_MASK 0x07
#define WHERE_NONE 0x00
#define WHERE_RUN 0x01   /* on the run list: attempted at the next poll */
#define WHERE_RD 0x02    /* parked on its fd's read list */
#define WHERE_WR 0x03    /* parked on its fd's write list */
#define WHERE_BATCH 0x04 /* on the batch a poll is attempting right now */
#define BF_CONNECTING 0x08 /* connect() said EINPROGRESS: the next attempt reads SO_ERROR */
#define BF_WOKEN 0x10      /* POLL: an edge woke it, so it is ready without asking */

/* Connections a multishot accept takes per attempt before letting the
 * rest of the loop run. */
#define ACCEPT_BURST 64

typedef struct epoll_fdstate {
    ca_io_op_list rd;    /* RECV / ACCEPT / POLL(IN) waiting for readability */
    ca_io_op_list wr;    /* SEND / CONNECT / POLL(OUT) waiting for writability */
    uint32_t last_events; /* the last edge's events (POLL results) */
    uint8_t nonblocking; /* made non-blocking for ACCEPT/CONNECT already */
    uint8_t registered;  /* in the epoll set */
    uint8_t rd_ready;    /* a read edge arrived since the last EAGAIN */
    uint8_t wr_ready;
    uint8_t hup;         /* the peer shut down or the socket failed: no more edges will come */
} epoll_fdstate;

struct ca_backend {
    int epfd;
    int wake_fd;
    bool use_pwait2;     /* cleared the first time the kernel refuses epoll_pwait2 */
    epoll_fdstate *fds;  /* indexed by fd */
    size_t nfds;
    ca_io_op_list run;   /* submitted or woken, to attempt at the next poll */
    ca_io_op_list batch; /* what the current poll is attempting */
    size_t inflight;
    ca_backend_stats stats;
};

/* MARK: - Lists */

/** Appends every op of `from` to the run list, in order. */
static void list_move_to_run(ca_backend *b, ca_io_op_list *from) {
    for (ca_io_op *op = from->head; op != NULL; op = op->next) {
        op->bflags = (uint8_t)((op->bflags & ~WHERE_MASK) | WHERE_RUN);
        if (op->opcode == CA_IO_POLL) op->bflags |= BF_WOKEN;
    }
    if (from->head == NULL) return;
    from->head->prev = b->run.tail;
    if (b->run.tail) b->run.tail->next = from->head;
    else b->run.head = from->head;
    b->run.tail = from->tail;
    from->head = from->tail = NULL;
}

/* MARK: - Per-fd state */

/** The state of `fd`, growing the table; NULL when out of memory. */
static epoll_fdstate *fd_state(ca_backend *b, int fd) {
    if (fd < 0) return NULL;
    if (CA_UNLIKELY((size_t)fd >= b->nfds)) {
        epoll_fdstate *t = ca_fd_table_grow(b->fds, &b->nfds, sizeof *t, fd);
        if (t == NULL) return NULL;
        b->fds = t;
    }
    return &b->fds[fd];
}

/** accept4 and connect take no MSG_DONTWAIT, and sock_accept/sock_connect
 *  are given the caller's fd, which may be blocking: it is made
 *  non-blocking the first time either is attempted on it. Receives and
 *  sends pass MSG_DONTWAIT instead, so a connection's own fd (accepted
 *  SOCK_NONBLOCK anyway) costs no fcntl. */
static void fd_make_nonblocking(epoll_fdstate *fs, int fd) {
    if (CA_LIKELY(fs->nonblocking)) return;
    fs->nonblocking = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK)) (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/** Registers `fd` for edges in both directions (once). Returns 0 or -errno. */
static int fd_register(ca_backend *b, epoll_fdstate *fs, int fd) {
    if (fs->registered) return 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.u64 = (uint64_t)fd};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        if (errno != EEXIST) return -errno;
        if (epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) return -errno;
    }
    fs->registered = 1;
    /* a fresh registration reports the current state as a first edge */
    fs->rd_ready = fs->wr_ready = 0;
    return 0;
}

/* MARK: - Attempts */

enum { ATTEMPT_DONE = 0, ATTEMPT_WAIT_RD = 1, ATTEMPT_WAIT_WR = 2 };

static uint32_t epoll_to_poll(uint32_t ev) {
    uint32_t r = 0;
    if (ev & EPOLLIN) r |= POLLIN;
    if (ev & EPOLLOUT) r |= POLLOUT;
    if (ev & EPOLLERR) r |= POLLERR;
    if (ev & EPOLLHUP) r |= POLLHUP;
    if (ev & EPOLLRDHUP) r |= POLLRDHUP;
    return r;
}

/** One non-blocking attempt of `op`. Returns ATTEMPT_DONE with *res set,
 *  or which direction it must wait for. */
static int epoll_attempt(ca_backend *b, ca_io_op *op, int32_t *res) {
    if (CA_UNLIKELY(op->flags & CA_IO_F_INJECT)) {
        op->flags &= (uint8_t)~(CA_IO_F_INJECT | CA_IO_F_WINS_CANCEL);
        *res = op->injected_res;
        return ATTEMPT_DONE;
    }
    if (op->opcode == CA_IO_NOP) {
        *res = 0;
        return ATTEMPT_DONE;
    }
    epoll_fdstate *fs = fd_state(b, op->fd);
    if (fs == NULL) {
        *res = op->fd < 0 ? -EBADF : -ENOMEM;
        return ATTEMPT_DONE;
    }
    b->stats.submitted++;
    ssize_t n;
    switch ((ca_io_opcode)op->opcode) {
    case CA_IO_RECV:
        if ((op->flags & CA_IO_F_POLL_FIRST) && !fs->rd_ready && !fs->hup && fs->registered) return ATTEMPT_WAIT_RD;
        do n = recv(op->fd, op->buf, op->len, op->msg_flags | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fs->rd_ready = 0;
            return ATTEMPT_WAIT_RD;
        }
        /* A stream recv stops short only when the queue ran dry (or at a
         * FIN, whose edge came with the data: `hup` keeps that one alive):
         * whatever arrives next raises a new edge. */
        if (n >= 0 && (size_t)n < op->len && !fs->hup) fs->rd_ready = 0;
        *res = n < 0 ? -errno : (int32_t)n;
        return ATTEMPT_DONE;
    case CA_IO_SEND:
        if ((op->flags & CA_IO_F_POLL_FIRST) && !fs->wr_ready && !fs->hup && fs->registered) return ATTEMPT_WAIT_WR;
        do n = send(op->fd, op->buf, op->len, op->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fs->wr_ready = 0;
            return ATTEMPT_WAIT_WR;
        }
        if (n >= 0 && (size_t)n < op->len) fs->wr_ready = 0;
        *res = n < 0 ? -errno : (int32_t)n;
        return ATTEMPT_DONE;
    case CA_IO_ACCEPT: {
        fd_make_nonblocking(fs, op->fd);
        int fd;
        do fd = accept4(op->fd, (struct sockaddr *)op->buf, op->buf ? &op->addrlen : NULL,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
        while (fd < 0 && errno == EINTR);
        if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fs->rd_ready = 0;
            return ATTEMPT_WAIT_RD;
        }
        *res = fd < 0 ? -errno : fd;
        return ATTEMPT_DONE;
    }
    case CA_IO_CONNECT:
        if (op->bflags & BF_CONNECTING) {
            int soerr = 0;
            socklen_t len = sizeof soerr;
            if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
            op->bflags &= (uint8_t)~BF_CONNECTING;
            *res = -soerr;
            return ATTEMPT_DONE;
        }
        fd_make_nonblocking(fs, op->fd);
        if (connect(op->fd, (const struct sockaddr *)op->buf, op->addrlen) == 0) {
            *res = 0;
            return ATTEMPT_DONE;
        }
        if (errno == EINPROGRESS || errno == EINTR) {
            /* the next edge on the write side ends it either way */
            op->bflags |= BF_CONNECTING;
            fs->wr_ready = 0;
            return ATTEMPT_WAIT_WR;
        }
        *res = -errno;
        return ATTEMPT_DONE;
    case CA_IO_POLL: {
        bool want_rd = (op->poll_events & POLLIN) != 0;
        if (op->bflags & BF_WOKEN) {
            op->bflags &= (uint8_t)~BF_WOKEN;
            uint32_t r = epoll_to_poll(fs->last_events) & (op->poll_events | POLLERR | POLLHUP | POLLRDHUP);
            if (r != 0) {
                *res = (int32_t)r;
                return ATTEMPT_DONE;
            }
        } else {
            /* asyncio's readers are level-triggered: ask the fd itself */
            struct pollfd p = {.fd = op->fd, .events = (short)op->poll_events};
            int k = poll(&p, 1, 0);
            if (k > 0) {
                *res = p.revents & POLLNVAL ? -EBADF : p.revents;
                return ATTEMPT_DONE;
            }
            if (k < 0 && errno != EINTR) {
                *res = -errno;
                return ATTEMPT_DONE;
            }
        }
        return want_rd ? ATTEMPT_WAIT_RD : ATTEMPT_WAIT_WR;
    }
    case CA_IO_RECVMSG:
        do n = recvmsg(op->fd, (struct msghdr *)op->buf, op->msg_flags | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fs->rd_ready = 0;
            return ATTEMPT_WAIT_RD;
        }
        *res = n < 0 ? -errno : (int32_t)n;
        return ATTEMPT_DONE;
    case CA_IO_SENDMSG:
        do n = sendmsg(op->fd, (const struct msghdr *)op->buf, op->msg_flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fs->wr_ready = 0;
            return ATTEMPT_WAIT_WR;
        }
        *res = n < 0 ? -errno : (int32_t)n;
        return ATTEMPT_DONE;
    case CA_IO_READ:
    case CA_IO_WRITE:
    case CA_IO_OPENAT:
    case CA_IO_FSYNC:
    case CA_IO_CLOSE:
        /* files are never ready-or-not: io.c runs them on the executor */
        *res = -EOPNOTSUPP;
        return ATTEMPT_DONE;
    case CA_IO_NOP:
    default:
        *res = 0;
        return ATTEMPT_DONE;
    }
}

/** Completes `op` finally and hands the result to its owner. */
static void epoll_complete(ca_backend *b, ca_io_op *op, int32_t res) {
    op->cqe_buf = NULL;
    op->state = CA_IO_OP_IDLE;
    op->bflags = 0;
    b->inflight--;
    b->stats.completions++;
    ca_io_dispatch(op, res, 0);
}

/** Parks `op` on its fd's list for `dir`, registering the fd if needed. */
static void epoll_park(ca_backend *b, ca_io_op *op, int dir) {
    epoll_fdstate *fs = &b->fds[op->fd];
    int ret = fd_register(b, fs, op->fd);
    if (ret < 0) {
        epoll_complete(b, op, ret);
        return;
    }
    op->bflags = (uint8_t)((op->bflags & ~WHERE_MASK) | (dir == ATTEMPT_WAIT_RD ? WHERE_RD : WHERE_WR));
    ca_io_op_list_push(dir == ATTEMPT_WAIT_RD ? &fs->rd : &fs->wr, op);
}

/** A multishot accept (io_uring's, emulated): takes connections until the
 *  queue is empty or a burst is done, each a completion with MORE, then
 *  waits for the next edge. Stops when a completion cancels it. */
static void epoll_accept_multishot(ca_backend *b, ca_io_op *op) {
    for (int i = 0; i < ACCEPT_BURST; i++) {
        int32_t res = 0;
        int r = epoll_attempt(b, op, &res);
        if (r != ATTEMPT_DONE) {
            epoll_park(b, op, r);
            return;
        }
        if (res < 0 || (op->flags & CA_IO_F_INJECT)) {
            epoll_complete(b, op, res);
            return;
        }
        b->stats.completions++;
        op->cqe_buf = NULL;
        ca_io_dispatch(op, res, CA_IO_CQE_MORE);
        if (op->state != CA_IO_OP_INFLIGHT || (op->bflags & WHERE_MASK) != WHERE_NONE) return;
    }
    /* more may be queued: go on at the next poll */
    op->bflags = (uint8_t)((op->bflags & ~WHERE_MASK) | WHERE_RUN);
    ca_io_op_list_push(&b->run, op);
}

/** Attempts the ops on the run list now; ops submitted by the completions
 *  it dispatches wait for the next poll. Returns how many completed. */
static int epoll_run_pass(ca_backend *b) {
    b->batch = b->run;
    b->run.head = b->run.tail = NULL;
    for (ca_io_op *op = b->batch.head; op != NULL; op = op->next)
        op->bflags = (uint8_t)((op->bflags & ~WHERE_MASK) | WHERE_BATCH);
    int done = 0;
    while (b->batch.head != NULL) {
        ca_io_op *op = b->batch.head;
        ca_io_op_list_unlink(&b->batch, op);
        op->bflags &= (uint8_t)~WHERE_MASK;
        if (op->opcode == CA_IO_ACCEPT && (op->flags & CA_IO_F_MULTISHOT) && !(op->flags & CA_IO_F_INJECT)) {
            epoll_accept_multishot(b, op);
            done++;
            continue;
        }
        int32_t res = 0;
        int r = epoll_attempt(b, op, &res);
        if (r == ATTEMPT_DONE) {
            epoll_complete(b, op, res);
            done++;
        } else {
            epoll_park(b, op, r);
        }
    }
    return done;
}

/* MARK: - The seam */

static ca_error *epoll_backend_create(ca_backend **out) {
    ca_error *err = NULL;
    ca_backend *b = ca_malloc(sizeof *b);
    if (b == NULL) return ca_error_new(&ca_MemoryError, NULL);
    *b = (ca_backend){.epfd = -1, .wake_fd = -1};
#ifdef HAVE_EPOLL_PWAIT2
    b->use_pwait2 = true;
#endif

    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd < 0) {
        err = ca_error_from_errno(&ca_OSError, errno, "epoll_create1");
        goto fail_free;
    }
    b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->wake_fd < 0) {
        err = ca_error_from_errno(&ca_OSError, errno, "eventfd");
        goto fail_epoll;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = EPOLL_WAKE_TAG};
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wake_fd, &ev) < 0) {
        err = ca_error_from_errno(&ca_OSError, errno, "epoll_ctl");
        goto fail_eventfd;
    }

    *out = b;
    return NULL;

fail_eventfd:
    close(b->wake_fd);
fail_epoll:
    close(b->epfd);
fail_free:
    ca_free(b);
    return err;
}

/**
 * Waits with nanosecond precision when the kernel has epoll_pwait2 (5.11).
 * Otherwise epoll_wait in milliseconds, rounded up: rounding a 300 µs timeout
 * down to 0 would make the loop spin until the timer is due.
 * Seccomp profiles that predate the syscall answer EPERM rather than ENOSYS.
 * Returns what epoll_wait returns, errno set.
 */
static int epoll_backend_wait(ca_backend *b, struct epoll_event *events, int64_t timeout_ns) {
#ifdef HAVE_EPOLL_PWAIT2
    if (b->use_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / NS_PER_SEC;
            ts.tv_nsec = timeout_ns % NS_PER_SEC;
            tsp = &ts;
        }
        int n = epoll_pwait2(b->epfd, events, EPOLL_BATCH, tsp, NULL);
        if (n >= 0 || (errno != ENOSYS && errno != EPERM)) return n;
        b->use_pwait2 = false;
    }
#endif
    int timeout_ms = -1;
    if (timeout_ns >= 0) {
        int64_t ms = timeout_ns / NS_PER_MS + (timeout_ns % NS_PER_MS != 0);
        timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
    }
    return epoll_wait(b->epfd, events, EPOLL_BATCH, timeout_ms);
}

/** Runs what was submitted, waits (not at all when that completed
 *  something), then runs what the edges woke. One read resets the eventfd
 *  counter, so wakes that piled up before a poll cost one event. Only the
 *  loop thread reads: the read cannot miss. */
static ca_error *epoll_backend_poll(ca_backend *b, int64_t timeout_ns, int *nevents) {
    struct epoll_event events[EPOLL_BATCH];
    *nevents = epoll_run_pass(b);
    if (*nevents > 0 || b->run.head != NULL) timeout_ns = 0;
    b->stats.syscalls++;
    int n = epoll_backend_wait(b, events, timeout_ns);
    if (n < 0) {
        if (errno == EINTR) return NULL;
        return ca_error_from_errno(&ca_OSError, errno, "epoll_wait");
    }
    for (int i = 0; i < n; i++) {
        uint64_t tag = events[i].data.u64;
        if (tag == EPOLL_WAKE_TAG) {
            uint64_t count;
            ssize_t r = read(b->wake_fd, &count, sizeof count);
            (void)r;
            (*nevents)++;
            continue;
        }
        if (tag >= b->nfds) continue;
        epoll_fdstate *fs = &b->fds[tag];
        uint32_t ev = events[i].events;
        fs->last_events = ev;
        if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) fs->hup = 1;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            fs->rd_ready = 1;
            list_move_to_run(b, &fs->rd);
        }
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
            fs->wr_ready = 1;
            list_move_to_run(b, &fs->wr);
        }
    }
    *nevents += epoll_run_pass(b);
    return NULL;
}

static void epoll_backend_wake(ca_backend *b) { ca_eventfd_signal(b->wake_fd); }

static void epoll_backend_submit(ca_backend *b, ca_io_op *op) {
    op->state = CA_IO_OP_INFLIGHT;
    op->bflags = WHERE_RUN;
    b->inflight++;
    ca_io_op_list_push(&b->run, op);
}

/** Unlinks `op` from wherever it waits and queues it to complete with
 *  -ECANCELED at the next poll. An epoll op never runs between polls, so
 *  a cancelled one has done nothing. */
static void epoll_backend_cancel(ca_backend *b, ca_io_op *op) {
    if (op->state != CA_IO_OP_INFLIGHT) return;
    op->state = CA_IO_OP_CANCELLING;
    switch (op->bflags & WHERE_MASK) {
    case WHERE_RUN: ca_io_op_list_unlink(&b->run, op); break;
    case WHERE_BATCH: ca_io_op_list_unlink(&b->batch, op); break;
    case WHERE_RD: ca_io_op_list_unlink(&b->fds[op->fd].rd, op); break;
    case WHERE_WR: ca_io_op_list_unlink(&b->fds[op->fd].wr, op); break;
    default: break;
    }
    if (!(op->flags & CA_IO_F_WINS_CANCEL)) { /* (a test's injected result completes anyway) */
        op->flags |= CA_IO_F_INJECT;
        op->injected_res = -ECANCELED;
    }
    op->bflags = WHERE_RUN;
    ca_io_op_list_push(&b->run, op);
}


static void epoll_backend_forget_fd(ca_backend *b, int fd) {
    if (fd < 0 || (size_t)fd >= b->nfds) return;
    epoll_fdstate *fs = &b->fds[fd];
    /* misuse (ops still waiting on it): keep everything, so they can end */
    if (fs->rd.head != NULL || fs->wr.head != NULL) return;
    if (fs->registered) (void)epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, NULL);
    memset(fs, 0, sizeof *fs);
}

/** Completes every op still waiting with -ECANCELED (the loop is closing;
 *  owners release what they hold). */
static void epoll_drain(ca_backend *b) {
    for (int rounds = 0; b->inflight > 0 && rounds < 100; rounds++) {
        for (size_t fd = 0; fd < b->nfds; fd++) {
            list_move_to_run(b, &b->fds[fd].rd);
            list_move_to_run(b, &b->fds[fd].wr);
        }
        ca_io_op_list batch = b->run;
        b->run.head = b->run.tail = NULL;
        while (batch.head != NULL) {
            ca_io_op *op = batch.head;
            ca_io_op_list_unlink(&batch, op);
            epoll_complete(b, op, -ECANCELED);
        }
    }
}

static void epoll_backend_close(ca_backend *b) {
    if (b == NULL) return;
    if (b->inflight > 0) epoll_drain(b);
    close(b->wake_fd);
    close(b->epfd);
    ca_free(b->fds);
    ca_free(b);
}

static void epoll_backend_stats(const ca_backend *b, ca_backend_stats *out) { *out = b->stats; }

/* Readiness-based: every receive reads into its owner's buffer. */
static uint32_t epoll_backend_provided_buffers(ca_backend *b) { return 0; }
static void epoll_backend_buffer_return(ca_backend *b, uint16_t bid) {}
static bool epoll_backend_file_ops(const ca_backend *b) { return false; }

const ca_backend_ops ca_backend_epoll_ops = {
    .name = "epoll",
    .create = epoll_backend_create,
    .poll = epoll_backend_poll,
    .wake = epoll_backend_wake,
    .close = epoll_backend_close,
    .submit = epoll_backend_submit,
    .cancel = epoll_backend_cancel,
    .forget_fd = epoll_backend_forget_fd,
    .stats = epoll_backend_stats,
    .provided_buffers = epoll_backend_provided_buffers,
    .buffer_return = epoll_backend_buffer_return,
    .file_ops = epoll_backend_file_ops,
};
