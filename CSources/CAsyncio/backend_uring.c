/*
 * backend_uring.c — the io_uring backend: one ring, plus an eventfd with a
 * READ kept armed on it so that wake() (an eventfd write from any thread)
 * completes a CQE and ends a wait in io_uring_submit_and_wait_timeout.
 *
 * Every operation is one SQE whose user_data is the ca_io_op; SQEs queued
 * during an iteration go to the kernel with the next poll's single
 * io_uring_enter. A full SQ is flushed to make room; what still finds no
 * room waits on a backlog the next poll drains. CQEs are reaped in batches,
 * the CQ head advanced before any completion is dispatched, and an
 * overflowed CQ (IORING_SQ_CQ_OVERFLOW) is flushed and reaped again.
 */
#include "backend.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <casyncio/error.h>
#include <casyncio/io.h>
#include <casyncio/object.h>

/* Enough for a busy iteration's batch; the CQ ring is CQ_FACTOR times this. */
#define URING_ENTRIES 256
#define URING_CQ_FACTOR 4

/* CQEs copied out per reaping round. */
#define URING_REAP_BATCH 64

/* user_data of the wake-up READ and of ASYNC_CANCEL requests. Operations
 * carry pointers, which are aligned, so odd tags never collide with one. */
#define URING_WAKE_TAG ((uint64_t)1)
#define URING_CANCEL_TAG ((uint64_t)3)

#define NS_PER_SEC INT64_C(1000000000)

/* The provided-buffer ring multishot receives complete in: 256 buffers of
 * 16 KiB, set up the first time a transport asks. A connection holds one
 * only between its completion and the end of its data_received. */
#define URING_BGID 7
#define URING_PBUF_COUNT 256
#define URING_PBUF_SIZE (16 * 1024)

/* A test override of URING_ENTRIES for loops created on this thread
 * (ca_io_testing_set_uring_entries): a tiny ring makes the SQ-full and
 * CQ-overflow paths easy to reach. */
static _Thread_local unsigned uring_entries_override;

struct ca_backend {
    struct io_uring ring;
    int wake_fd;
    bool wake_armed;     /* a READ on wake_fd is queued or in flight */
    bool needs_enable;   /* created IORING_SETUP_R_DISABLED; enabled by the first poll */
    bool taskrun_flag;   /* the kernel raises IORING_SQ_TASKRUN while completions wait */
    bool single_issuer;  /* the ring only accepts submissions from owner_tid */
    bool no_multishot_accept; /* the kernel refused IORING_ACCEPT_MULTISHOT once */
    bool file_ops;       /* the probe found OPENAT, READ, WRITE, FSYNC and CLOSE */
    unsigned entries;
    uint64_t owner_tid;  /* the thread that enabled a SINGLE_ISSUER ring */
    uint64_t wake_buf;   /* the READ's target: must outlive the SQE, so it lives here */
    size_t inflight;     /* ops submitted and not finally completed */
    ca_io_op_list backlog; /* ops that found no SQE, oldest first */
    ca_backend_stats stats;
    /* provided buffers (uring_backend_provided_buffers) */
    struct io_uring_buf_ring *pbuf_ring;
    uint8_t *pbuf_mem;
    bool pbuf_tried;
    bool no_multishot_recv;  /* the kernel refused IORING_RECV_MULTISHOT once (before 6.0) */
    bool pbuf_adopt;         /* the ring was rebuilt: register the buffers on it once enabled */
    uint64_t pbuf_lent[URING_PBUF_COUNT / 64]; /* buffers owners hold */
};

void ca_io_testing_set_uring_entries(unsigned entries) { uring_entries_override = entries; }

/*
 * Setup flags from most to least capable. SINGLE_ISSUER pins the ring to the
 * task that enables it, so those rings start disabled and the first poll
 * enables them: a loop may be created on one thread and run on another, but
 * every poll after the first must come from that thread (EEXIST otherwise).
 * DEFER_TASKRUN (6.1) runs completions only when we wait, which is exactly
 * when the loop looks at them; COOP_TASKRUN (5.19) at least avoids IPIs.
 * TASKRUN_FLAG lets a non-blocking poll skip the syscall when idle.
 */
static const unsigned uring_setup_ladder[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_R_DISABLED,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_R_DISABLED,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

/** Climbs down the ladder while the kernel says EINVAL (an unknown flag);
 *  any other error (ENOSYS, EPERM, ENOMEM) would repeat, so it is returned.
 *  The CQ is sized apart (CQSIZE, 5.5) so a thousand connections' reads
 *  rarely overflow it. The kernel always creates the ring fd O_CLOEXEC.
 *  Returns 0 or -errno. */
static int uring_queue_init(struct io_uring *ring, unsigned entries, unsigned *flags) {
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof uring_setup_ladder / sizeof uring_setup_ladder[0]; i++) {
        struct io_uring_params params = {.flags = uring_setup_ladder[i] | IORING_SETUP_CQSIZE,
                                         .cq_entries = entries * URING_CQ_FACTOR};
        ret = io_uring_queue_init_params(entries, ring, &params);
        if (ret == -EINVAL) {
            params = (struct io_uring_params){.flags = uring_setup_ladder[i]};
            ret = io_uring_queue_init_params(entries, ring, &params);
        }
        if (ret != -EINVAL) {
            *flags = uring_setup_ladder[i];
            break;
        }
    }
    return ret;
}

/** The opcodes the socket operations need (5.6 has them all); without them
 *  the ring is as good as refused, so the loop falls back to epoll. Notes
 *  whether the file opcodes are there too (without them files go to the
 *  executor). */
static int uring_probe_ops(struct io_uring *ring, bool *file_ops) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (probe == NULL) return -ENOSYS;
    static const int needed[] = {IORING_OP_RECV, IORING_OP_SEND, IORING_OP_ACCEPT, IORING_OP_CONNECT,
                                 IORING_OP_ASYNC_CANCEL, IORING_OP_POLL_ADD, IORING_OP_READ};
    int ret = 0;
    for (size_t i = 0; i < sizeof needed / sizeof needed[0]; i++)
        if (!io_uring_opcode_supported(probe, needed[i])) ret = -ENOSYS;
    static const int files[] = {IORING_OP_OPENAT, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC, IORING_OP_CLOSE};
    *file_ops = true;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!io_uring_opcode_supported(probe, files[i])) *file_ops = false;
    io_uring_free_probe(probe);
    return ret;
}

static void uring_note_flags(ca_backend *b, unsigned flags) {
    b->needs_enable = (flags & IORING_SETUP_R_DISABLED) != 0;
    b->taskrun_flag = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    b->single_issuer = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;
}

/* MARK: - SQEs */

/** An SQE, flushing a full SQ to the kernel once to make room (a disabled
 *  ring, or a foreign thread on a SINGLE_ISSUER ring, cannot be flushed:
 *  then NULL, and the caller backlogs). `pretend_full` is fault injection. */
static struct io_uring_sqe *uring_get_sqe(ca_backend *b, bool pretend_full) {
    struct io_uring_sqe *sqe = pretend_full ? NULL : io_uring_get_sqe(&b->ring);
    if (CA_LIKELY(sqe != NULL)) return sqe;
    b->stats.sq_full++;
    if (b->needs_enable) return NULL;
    if (b->single_issuer && b->owner_tid != ca_thread_id()) return NULL;
    if (io_uring_submit(&b->ring) < 0) return NULL;
    return io_uring_get_sqe(&b->ring);
}

/** Queues (does not submit) the READ on the eventfd: the next poll's single
 *  io_uring_enter submits it along with the loop's own SQEs. */
static ca_error *uring_arm_wake(ca_backend *b) {
    struct io_uring_sqe *sqe = uring_get_sqe(b, false);
    if (sqe == NULL) return ca_error_from_errno(&ca_OSError, EBUSY, "io_uring_get_sqe");
    io_uring_prep_read(sqe, b->wake_fd, &b->wake_buf, sizeof b->wake_buf, 0);
    io_uring_sqe_set_data64(sqe, URING_WAKE_TAG);
    b->wake_armed = true;
    return NULL;
}

/** Fills `sqe` for `op`. */
static void uring_prep(ca_backend *b, struct io_uring_sqe *sqe, ca_io_op *op) {
    if (CA_UNLIKELY(op->flags & CA_IO_F_INJECT)) {
        io_uring_prep_nop(sqe);
    } else {
        switch ((ca_io_opcode)op->opcode) {
        case CA_IO_RECV:
            if (op->flags & CA_IO_F_BUF_SELECT) {
                if (b->no_multishot_recv) io_uring_prep_recv(sqe, op->fd, NULL, 0, op->msg_flags);
                else io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, op->msg_flags);
                sqe->flags |= IOSQE_BUFFER_SELECT;
                sqe->buf_group = URING_BGID;
                break;
            }
            io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->msg_flags);
            if (op->flags & CA_IO_F_POLL_FIRST) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
            break;
        case CA_IO_SEND:
            io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->msg_flags | MSG_NOSIGNAL);
            if (op->flags & CA_IO_F_POLL_FIRST) sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
            break;
        case CA_IO_ACCEPT:
            if ((op->flags & CA_IO_F_MULTISHOT) && !b->no_multishot_accept) {
                /* every accepted connection would race for one address
                 * buffer, so a multishot accept asks for none */
                io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            } else {
                io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)op->buf, op->buf ? &op->addrlen : NULL,
                                     SOCK_NONBLOCK | SOCK_CLOEXEC);
            }
            break;
        case CA_IO_CONNECT:
            io_uring_prep_connect(sqe, op->fd, (const struct sockaddr *)op->buf, op->addrlen);
            break;
        case CA_IO_POLL:
            io_uring_prep_poll_add(sqe, op->fd, op->poll_events);
            break;
        case CA_IO_RECVMSG:
            io_uring_prep_recvmsg(sqe, op->fd, (struct msghdr *)op->buf, (unsigned)op->msg_flags);
            break;
        case CA_IO_SENDMSG:
            io_uring_prep_sendmsg(sqe, op->fd, (const struct msghdr *)op->buf, (unsigned)(op->msg_flags | MSG_NOSIGNAL));
            break;
        case CA_IO_READ:
            io_uring_prep_read(sqe, op->fd, op->buf, op->len, op->offset);
            break;
        case CA_IO_WRITE:
            io_uring_prep_write(sqe, op->fd, op->buf, op->len, op->offset);
            break;
        case CA_IO_OPENAT:
            io_uring_prep_openat(sqe, AT_FDCWD, (const char *)op->buf, op->msg_flags, op->len);
            break;
        case CA_IO_FSYNC:
            io_uring_prep_fsync(sqe, op->fd, op->len);
            break;
        case CA_IO_CLOSE:
            io_uring_prep_close(sqe, op->fd);
            break;
        case CA_IO_NOP:
        default:
            io_uring_prep_nop(sqe);
            break;
        }
    }
    io_uring_sqe_set_data(sqe, op);
}

static bool backlog_contains(const ca_backend *b, const ca_io_op *op) {
    return op->prev != NULL || b->backlog.head == op;
}

/** Moves backlogged ops into the SQ while it has room, oldest first. */
static void uring_flush_backlog(ca_backend *b) {
    while (b->backlog.head != NULL) {
        struct io_uring_sqe *sqe = uring_get_sqe(b, false);
        if (sqe == NULL) return;
        ca_io_op *op = b->backlog.head;
        ca_io_op_list_unlink(&b->backlog, op);
        uring_prep(b, sqe, op);
        b->stats.submitted++;
    }
}

static void uring_backend_submit(ca_backend *b, ca_io_op *op) {
    op->state = CA_IO_OP_INFLIGHT;
    op->next = op->prev = NULL;
    b->inflight++;
    bool pretend_full = (op->flags & CA_IO_F_FAULT_SQ_FULL) != 0;
    op->flags &= (uint8_t)~CA_IO_F_FAULT_SQ_FULL;
    struct io_uring_sqe *sqe = b->backlog.head == NULL ? uring_get_sqe(b, pretend_full) : NULL;
    if (sqe == NULL) {
        ca_io_op_list_push(&b->backlog, op);
        return;
    }
    uring_prep(b, sqe, op);
    b->stats.submitted++;
}

static void uring_backend_cancel(ca_backend *b, ca_io_op *op) {
    if (op->state != CA_IO_OP_INFLIGHT) return;
    op->state = CA_IO_OP_CANCELLING;
    if (backlog_contains(b, op)) {
        /* never reached the kernel: it completes as a NOP carrying -ECANCELED */
        if (CA_UNLIKELY(op->flags & CA_IO_F_WINS_CANCEL)) return; /* (a test: it completes anyway) */
        op->flags |= CA_IO_F_INJECT;
        op->injected_res = -ECANCELED;
        return;
    }
    struct io_uring_sqe *sqe = uring_get_sqe(b, false);
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
        io_uring_sqe_set_data64(sqe, URING_CANCEL_TAG);
        return;
    }
    /* No room even after a flush: cancel synchronously (6.0). The op's own
     * CQE still arrives and is reaped as usual. */
    struct io_uring_sync_cancel_reg reg = {.addr = (uint64_t)(uintptr_t)op, .timeout = {-1, -1}};
    (void)io_uring_register_sync_cancel(&b->ring, &reg);
}

/* MARK: - Completions */

/** Dispatches one CQE. Multishot accept refused by an old kernel (EINVAL
 *  before 5.19) is resubmitted single-shot without the owner noticing. */
static void uring_complete(ca_backend *b, uint64_t user_data, int32_t res, uint32_t flags) {
    ca_io_op *op = (ca_io_op *)(uintptr_t)user_data;
    bool more = (flags & IORING_CQE_F_MORE) != 0;
    op->cqe_buf = NULL;
    if (CA_UNLIKELY(op->flags & CA_IO_F_INJECT)) {
        res = op->injected_res;
        op->flags &= (uint8_t)~(CA_IO_F_INJECT | CA_IO_F_WINS_CANCEL);
        more = false;
    } else if (CA_UNLIKELY(res == -EINVAL && op->state == CA_IO_OP_INFLIGHT &&
                           ((op->opcode == CA_IO_ACCEPT && (op->flags & CA_IO_F_MULTISHOT) && !b->no_multishot_accept) ||
                            (op->opcode == CA_IO_RECV && (op->flags & CA_IO_F_BUF_SELECT) && !b->no_multishot_recv)))) {
        if (op->opcode == CA_IO_ACCEPT) b->no_multishot_accept = true;
        else b->no_multishot_recv = true;
        b->inflight--;
        uring_backend_submit(b, op);
        return;
    } else if (flags & IORING_CQE_F_BUFFER) {
        uint16_t bid = (uint16_t)(flags >> IORING_CQE_BUFFER_SHIFT);
        op->cqe_buf = b->pbuf_mem + (size_t)bid * URING_PBUF_SIZE;
        op->cqe_bid = bid;
        b->pbuf_lent[bid / 64] |= (uint64_t)1 << (bid % 64);
    }
    if (!more) {
        op->state = CA_IO_OP_IDLE;
        b->inflight--;
    }
    b->stats.completions++;
    ca_io_dispatch(op, res, more ? CA_IO_CQE_MORE : 0);
}

/** Copies CQEs out in batches, frees their slots, then dispatches them, so
 *  the kernel has room while owners run. Returns the number of events;
 *  LIBURING_UDATA_TIMEOUT entries are liburing's own timeout on kernels
 *  without EXT_ARG, and cancel requests' CQEs say nothing the target's own
 *  CQE will not; neither counts. */
static int uring_reap(ca_backend *b) {
    int nevents = 0;
    bool overflow_seen = false;
    for (;;) {
        /* With NODROP (5.5) an overflowed CQ keeps the rest in the kernel,
         * which says so with IORING_SQ_CQ_OVERFLOW; once the ring is empty,
         * entering with GETEVENTS moves them in (peek_batch does it too). */
        bool overflow = (IO_URING_READ_ONCE(*b->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW) != 0;
        if (overflow && !overflow_seen) {
            overflow_seen = true;
            b->stats.cq_overflow++;
        }
        struct io_uring_cqe *cqes[URING_REAP_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&b->ring, cqes, URING_REAP_BATCH);
        if (n == 0) {
            if (!(IO_URING_READ_ONCE(*b->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW)) break;
            b->stats.syscalls++;
            int ret = io_uring_get_events(&b->ring);
            if (ret < 0 && ret != -EBUSY && ret != -EAGAIN && ret != -EINTR) break;
            if (io_uring_cq_ready(&b->ring) == 0) break;
            continue;
        }
        struct { uint64_t user_data; int32_t res; uint32_t flags; } batch[URING_REAP_BATCH];
        for (unsigned i = 0; i < n; i++) {
            batch[i].user_data = cqes[i]->user_data;
            batch[i].res = cqes[i]->res;
            batch[i].flags = cqes[i]->flags;
        }
        io_uring_cq_advance(&b->ring, n);
        for (unsigned i = 0; i < n; i++) {
            uint64_t ud = batch[i].user_data;
            if (ud == LIBURING_UDATA_TIMEOUT || ud == URING_CANCEL_TAG) continue;
            nevents++;
            if (ud == URING_WAKE_TAG) {
                b->wake_armed = false;
                continue;
            }
            uring_complete(b, ud, batch[i].res, batch[i].flags);
        }
    }
    return nevents;
}

/* MARK: - Provided buffers */

/** Puts every buffer no owner holds into the ring (setup, and after the
 *  ring was rebuilt for a new thread). */
static void pbuf_fill(ca_backend *b) {
    io_uring_buf_ring_init(b->pbuf_ring);
    int mask = io_uring_buf_ring_mask(URING_PBUF_COUNT), added = 0;
    for (unsigned i = 0; i < URING_PBUF_COUNT; i++) {
        if (b->pbuf_lent[i / 64] & ((uint64_t)1 << (i % 64))) continue;
        io_uring_buf_ring_add(b->pbuf_ring, b->pbuf_mem + (size_t)i * URING_PBUF_SIZE, URING_PBUF_SIZE,
                              (unsigned short)i, mask, added++);
    }
    io_uring_buf_ring_advance(b->pbuf_ring, added);
}

static int pbuf_register(ca_backend *b) {
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)b->pbuf_ring,
                                   .ring_entries = URING_PBUF_COUNT, .bgid = URING_BGID};
    int ret = io_uring_register_buf_ring(&b->ring, &reg, 0);
    if (ret == 0) pbuf_fill(b);
    return ret;
}

static void pbuf_free(ca_backend *b) {
    if (b->pbuf_ring != NULL) munmap(b->pbuf_ring, URING_PBUF_COUNT * sizeof(struct io_uring_buf));
    if (b->pbuf_mem != NULL) munmap(b->pbuf_mem, (size_t)URING_PBUF_COUNT * URING_PBUF_SIZE);
    b->pbuf_ring = NULL;
    b->pbuf_mem = NULL;
}

/* The ring of buffers lives in pages of its own (the kernel wants it page
 * aligned); the buffers are mapped lazily by the kernel on first touch. */
static uint32_t uring_backend_provided_buffers(ca_backend *b) {
    if (CA_LIKELY(b->pbuf_ring != NULL)) return URING_PBUF_SIZE;
    if (b->pbuf_tried) return 0;
    b->pbuf_tried = true;
    void *ring = mmap(NULL, URING_PBUF_COUNT * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *mem = mmap(NULL, (size_t)URING_PBUF_COUNT * URING_PBUF_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b->pbuf_ring = ring == MAP_FAILED ? NULL : ring;
    b->pbuf_mem = mem == MAP_FAILED ? NULL : mem;
    if (b->pbuf_ring == NULL || b->pbuf_mem == NULL || pbuf_register(b) < 0) {
        /* before 5.19, or a SINGLE_ISSUER ring owned by another thread:
         * receives go single-shot into their own buffers */
        pbuf_free(b);
        return 0;
    }
    return URING_PBUF_SIZE;
}

static void uring_backend_buffer_return(ca_backend *b, uint16_t bid) {
    b->pbuf_lent[bid / 64] &= ~((uint64_t)1 << (bid % 64));
    io_uring_buf_ring_add(b->pbuf_ring, b->pbuf_mem + (size_t)bid * URING_PBUF_SIZE, URING_PBUF_SIZE, bid,
                          io_uring_buf_ring_mask(URING_PBUF_COUNT), 0);
    io_uring_buf_ring_advance(b->pbuf_ring, 1);
}

/* MARK: - Lifecycle and polling */

/*
 * The eventfd is blocking on purpose: some kernels complete a READ on an
 * O_NONBLOCK file with -EAGAIN instead of waiting (6.18 waits), and the only
 * write that could block (at a counter of 2^64-2) never happens.
 */
static ca_error *uring_backend_create(ca_backend **out) {
    ca_error *err = NULL;
    ca_backend *b = ca_malloc(sizeof *b);
    if (b == NULL) return ca_error_new(&ca_MemoryError, NULL);
    *b = (ca_backend){.wake_fd = -1};
    b->entries = uring_entries_override ? uring_entries_override : URING_ENTRIES;

    unsigned flags = 0;
    int ret = uring_queue_init(&b->ring, b->entries, &flags);
    if (ret < 0) {
        err = ca_error_from_errno(&ca_OSError, -ret, "io_uring_queue_init");
        goto fail_free;
    }
    uring_note_flags(b, flags);
    ret = uring_probe_ops(&b->ring, &b->file_ops);
    if (ret < 0) {
        err = ca_error_from_errno(&ca_OSError, -ret, "io_uring_get_probe_ring");
        goto fail_ring;
    }

    b->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (b->wake_fd < 0) {
        err = ca_error_from_errno(&ca_OSError, errno, "eventfd");
        goto fail_ring;
    }
    err = uring_arm_wake(b);
    if (err != NULL) goto fail_eventfd;

    *out = b;
    return NULL;

fail_eventfd:
    close(b->wake_fd);
fail_ring:
    io_uring_queue_exit(&b->ring);
fail_free:
    ca_free(b);
    return err;
}

/** A timeout (ETIME), a signal (EINTR) or a momentary shortage (EAGAIN: no
 *  request memory; EBUSY: completions backed up) is not a failure: the loop
 *  runs another iteration, and reaping what is there frees room. */
static bool uring_wait_is_transient(int ret) {
    return ret == -EINTR || ret == -ETIME || ret == -EAGAIN || ret == -EBUSY;
}

/**
 * poll(0): submits and posts pending completions without waiting. With
 * DEFER_TASKRUN completions are posted only while entering with GETEVENTS,
 * but TASKRUN_FLAG tells us when that is needed, so an idle ring with nothing
 * queued costs no syscall. The enter asks for no minimum rather than using a
 * zero timeout, which would arm a timer and sleep on it (~14 µs on 6.18).
 * Returns what io_uring_submit_and_get_events returns.
 */
static int uring_submit_nowait(ca_backend *b) {
    unsigned pending = IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW;
    if (b->taskrun_flag && io_uring_sq_ready(&b->ring) == 0 &&
        (IO_URING_READ_ONCE(*b->ring.sq.kflags) & pending) == 0)
        return 0;
    b->stats.syscalls++;
    return io_uring_submit_and_get_events(&b->ring);
}

/* A SINGLE_ISSUER ring refuses every other thread (EEXIST). When a loop is
 * run from a new thread the ring is rebuilt there — which is only possible
 * while nothing but the wake-up READ is in flight: the eventfd keeps any
 * wake-up that arrived meanwhile, but an operation's completion would be
 * lost with the old ring. */
static ca_error *uring_adopt_thread(ca_backend *b) {
    if (b->inflight > 0)
        return ca_error_format(&ca_RuntimeError,
                               "cannot run an io_uring loop on a new thread with %zu I/O operation(s) in flight",
                               b->inflight);
    io_uring_queue_exit(&b->ring);
    b->wake_armed = false;
    unsigned flags = 0;
    int ret = uring_queue_init(&b->ring, b->entries, &flags);
    if (ret < 0) return ca_error_from_errno(&ca_OSError, -ret, "io_uring_queue_init");
    uring_note_flags(b, flags);
    b->pbuf_adopt = b->pbuf_ring != NULL;
    return NULL;
}

static ca_error *uring_enable(ca_backend *b) {
    b->owner_tid = ca_thread_id();
    /* Not io_uring_enable_rings(): liburing 2.3 declares it but its .so
     * does not export it. */
    int ret = io_uring_register(b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    if (ret < 0) return ca_error_from_errno(&ca_OSError, -ret, "io_uring_register");
    b->needs_enable = false;
    return NULL;
}

static ca_error *uring_backend_poll(ca_backend *b, int64_t timeout_ns, int *nevents) {
    *nevents = 0;
    if (b->single_issuer && !b->needs_enable && b->owner_tid != ca_thread_id()) {
        ca_error *err = uring_adopt_thread(b);
        if (err != NULL) return err;
    }
    if (b->needs_enable) {
        ca_error *err = uring_enable(b);
        if (err != NULL) return err;
    }
    if (CA_UNLIKELY(b->pbuf_adopt)) {
        b->pbuf_adopt = false;
        if (pbuf_register(b) < 0) return ca_error_new(&ca_RuntimeError, "cannot register the provided buffers again");
    }
    if (!b->wake_armed) {
        ca_error *err = uring_arm_wake(b);
        if (err != NULL) return err;
    }
    uring_flush_backlog(b);

    int ret;
    const char *call;
    if (timeout_ns == 0 || b->backlog.head != NULL) {
        ret = uring_submit_nowait(b);
        call = "io_uring_submit_and_get_events";
    } else {
        struct __kernel_timespec ts, *tsp = NULL;
        if (timeout_ns > 0) {
            ts.tv_sec = timeout_ns / NS_PER_SEC;
            ts.tv_nsec = timeout_ns % NS_PER_SEC;
            tsp = &ts;
        }
        struct io_uring_cqe *cqe;
        b->stats.syscalls++;
        ret = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, tsp, NULL);
        call = "io_uring_submit_and_wait_timeout";
    }
    if (ret < 0 && !uring_wait_is_transient(ret)) return ca_error_from_errno(&ca_OSError, -ret, call);

    *nevents = uring_reap(b);
    if (!b->wake_armed) return uring_arm_wake(b);
    return NULL;
}

static void uring_backend_wake(ca_backend *b) { ca_eventfd_signal(b->wake_fd); }

/**
 * Cancels whatever is in flight and reaps until every op has completed, so
 * no kernel write lands in a buffer its owner frees afterwards. Ops that
 * never reached the kernel complete with -ECANCELED. A ring that cannot be
 * entered from this thread (SINGLE_ISSUER, owned elsewhere) is not drained:
 * its ops' owners are leaked rather than freed under the kernel's feet.
 */
static void uring_drain(ca_backend *b) {
    if (b->needs_enable && b->inflight > 0 && uring_enable(b) != NULL) return;
    if (b->single_issuer && b->owner_tid != ca_thread_id()) return;
    for (ca_io_op *op = b->backlog.head; op != NULL; op = op->next) {
        op->flags |= CA_IO_F_INJECT;
        op->injected_res = -ECANCELED;
    }
    uring_flush_backlog(b);
    struct io_uring_sqe *sqe = uring_get_sqe(b, false);
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, URING_CANCEL_TAG);
    }
    for (int rounds = 0; b->inflight > 0 && rounds < 100; rounds++) {
        struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        int ret = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, &ts, NULL);
        if (ret < 0 && !uring_wait_is_transient(ret)) break;
        uring_reap(b);
    }
}

/** Once the ring's last reference is gone the kernel cancels, never
 *  completes, the in-flight READ, so its buffer can go with the struct. */
static void uring_backend_close(ca_backend *b) {
    if (b == NULL) return;
    if (b->inflight > 0) uring_drain(b);
    io_uring_queue_exit(&b->ring);
    pbuf_free(b);
    close(b->wake_fd);
    ca_free(b);
}

/* io_uring holds no per-fd state, but an SQE queued and not submitted yet
 * names its fd by number, which the kernel resolves only at submission:
 * one left behind by an operation cancelled just before the close (a
 * sendall, say) would act on whatever socket reuses the number next. The
 * SQE of a cancelled operation becomes a NOP completing it with
 * -ECANCELED (it never started); one still wanted goes to the kernel now,
 * while the number still means its file (unless the ring cannot be
 * flushed from here: the caller broke "no op in flight" then). */
static void uring_backend_forget_fd(ca_backend *b, int fd) {
    const struct io_uring_sq *sq = &b->ring.sq;
    bool flush = false;
    for (unsigned i = sq->sqe_head; i != sq->sqe_tail; i++) {
        struct io_uring_sqe *sqe = &sq->sqes[i & sq->ring_mask];
        uint64_t ud = sqe->user_data;
        if (sqe->fd != fd || ud == URING_WAKE_TAG || ud == URING_CANCEL_TAG || ud == LIBURING_UDATA_TIMEOUT) continue;
        ca_io_op *op = (ca_io_op *)(uintptr_t)ud;
        if (op->state == CA_IO_OP_CANCELLING) {
            if (CA_UNLIKELY(op->flags & CA_IO_F_WINS_CANCEL)) continue; /* a test's NOP completes anyway */
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, ud);
            op->flags |= CA_IO_F_INJECT;
            op->injected_res = -ECANCELED;
        } else {
            flush = true;
        }
    }
    if (flush && !b->needs_enable && !(b->single_issuer && b->owner_tid != ca_thread_id())) {
        b->stats.syscalls++;
        (void)io_uring_submit(&b->ring);
    }
}

static void uring_backend_stats(const ca_backend *b, ca_backend_stats *out) { *out = b->stats; }

static bool uring_backend_file_ops(const ca_backend *b) { return b->file_ops; }

const ca_backend_ops ca_backend_uring_ops = {
    .name = "io_uring",
    .create = uring_backend_create,
    .poll = uring_backend_poll,
    .wake = uring_backend_wake,
    .close = uring_backend_close,
    .submit = uring_backend_submit,
    .cancel = uring_backend_cancel,
    .forget_fd = uring_backend_forget_fd,
    .stats = uring_backend_stats,
    .provided_buffers = uring_backend_provided_buffers,
    .buffer_return = uring_backend_buffer_return,
    .file_ops = uring_backend_file_ops,
};
