/*
 * backend.h — the I/O backend seam (internal). Small on purpose, like
 * Redis's ae.c: create, poll with a timeout, wake from any thread, close,
 * submit an operation, cancel it. backend_uring.c and backend_epoll.c
 * implement it side by side; the loop picks one (io_uring unless refused,
 * ASYNCIO_BACKEND=uring|epoll overrides).
 *
 * Operations are completion-based on both backends: the caller fills a
 * ca_io_op, submits it, and the backend later reports its outcome through
 * ca_io_dispatch (io.c) from inside poll() — exactly once per operation, or
 * several times for a multishot one (CA_IO_CQE_MORE on all but the last).
 * io_uring turns an op into an SQE; epoll performs the same system call when
 * the fd is ready. Nothing is ever completed inline from submit or cancel,
 * so callers never see their completion code re-entered.
 */
#ifndef CASYNCIO_BACKEND_H
#define CASYNCIO_BACKEND_H

#include <casyncio/io.h>
#include <casyncio/loop.h>
#include <sys/socket.h>

typedef struct ca_backend ca_backend;
typedef struct ca_io_op ca_io_op;

/* MARK: - Operations */

/* The opcodes are ca_io_opcode (io.h): the fault hook sees them too. */

/* Submission flags (ca_io_op.flags). */
#define CA_IO_F_MULTISHOT 0x01  /* ACCEPT: keep accepting (io_uring only; ignored elsewhere) */
#define CA_IO_F_POLL_FIRST 0x02 /* RECV/SEND: the fd was just drained; wait for readiness first */
#define CA_IO_F_FAULT_SQ_FULL 0x04 /* fault injection: the first SQE request finds the SQ full */
#define CA_IO_F_INJECT 0x08    /* fault injection: complete with injected_res, do nothing */
#define CA_IO_F_WINS_CANCEL 0x20 /* fault injection: the injected result beats a cancel */
#define CA_IO_F_BUF_SELECT 0x10 /* RECV: multishot, each completion in a buffer the backend
                                   provides (see provided_buffers); buf/len are ignored */
#define CA_IO_F_COUNTED 0x40   /* set by ca_io_submit: counted in its fd's inflight (io.c) */

/* Completion flags (passed to ca_io_dispatch). */
#define CA_IO_CQE_MORE 0x01     /* a multishot op stays in flight: more completions follow */

/* Backend-private states of an op. */
enum { CA_IO_OP_IDLE = 0, CA_IO_OP_INFLIGHT = 1, CA_IO_OP_CANCELLING = 2 };

/**
 * One operation. The owner (io.c, transport.c) embeds it in its own struct,
 * keeps it alive and unchanged from submit until its final completion, and
 * may reuse it afterwards. Fields below `backend-private` belong to the
 * backend while the op is in flight.
 */
struct ca_io_op {
    /* Called by ca_io_dispatch for each completion (res: result or -errno). */
    void (*complete)(ca_io_op *op, int32_t res, uint32_t cflags);
    ca_loop *loop;          /* borrowed: whose io_pending counts this op */
    int32_t fd;
    uint8_t opcode;         /* ca_io_opcode */
    uint8_t flags;          /* CA_IO_F_* */
    uint8_t state;          /* CA_IO_OP_* (backend-private) */
    uint8_t bflags;         /* backend-private bookkeeping (epoll: where the op waits) */
    uint32_t len;           /* RECV/SEND/READ/WRITE: bytes; OPENAT: mode; FSYNC: IORING_FSYNC_* */
    int32_t msg_flags;      /* RECV/SEND/RECVMSG/SENDMSG: MSG_*; OPENAT: O_* flags */
    uint64_t offset;        /* READ/WRITE: file offset */
    uint32_t poll_events;   /* POLL: POLLIN / POLLOUT */
    void *buf;              /* RECV/SEND/READ/WRITE: data; ACCEPT/CONNECT: struct sockaddr storage;
                               RECVMSG/SENDMSG: struct msghdr; OPENAT: the path */
    socklen_t addrlen;      /* CONNECT: length of *buf; ACCEPT: capacity in, length out */
    int32_t injected_res;   /* CA_IO_F_INJECT: the result to complete with */
    /* Set by the backend for the completion being dispatched: the provided
     * buffer holding its bytes (NULL when none), to hand back with
     * buffer_return once consumed. */
    uint8_t *cqe_buf;
    uint16_t cqe_bid;
    /* backend-private */
    ca_io_op *next;
    ca_io_op *prev;
};

/** A FIFO of ops linked through their backend-private next/prev: epoll's
 *  run and per-fd lists, io_uring's backlog. */
typedef struct ca_io_op_list {
    ca_io_op *head;
    ca_io_op *tail;
} ca_io_op_list;

static inline void ca_io_op_list_push(ca_io_op_list *l, ca_io_op *op) {
    op->next = NULL;
    op->prev = l->tail;
    if (l->tail) l->tail->next = op;
    else l->head = op;
    l->tail = op;
}

/** Unlinks `op`, which must be on `l`. */
static inline void ca_io_op_list_unlink(ca_io_op_list *l, ca_io_op *op) {
    if (op->prev) op->prev->next = op->next;
    else l->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else l->tail = op->prev;
    op->next = op->prev = NULL;
}

/** Routes one completion of `op` to its owner and keeps loop->io_pending
 *  in step (io.c). The only way a backend reports a completion. */
void ca_io_dispatch(ca_io_op *op, int32_t res, uint32_t cflags);

/** Counters the backends keep for tests and the inspector. */
typedef struct ca_backend_stats {
    uint64_t submitted;     /* ops handed to the kernel (SQEs, or attempted syscalls) */
    uint64_t completions;   /* completions dispatched */
    uint64_t sq_full;       /* io_uring: times the SQ was full and was flushed to make room */
    uint64_t cq_overflow;   /* io_uring: times the kernel reported an overflowed CQ */
    uint64_t syscalls;      /* io_uring_enter / epoll_wait calls made by poll */
} ca_backend_stats;

/* MARK: - The seam */

typedef struct ca_backend_ops {
    const char *name; /* "io_uring", "epoll" */
    /** Creates the backend (including its wake-up eventfd). OSError with errno
     *  on failure (ENOSYS/EPERM from io_uring_setup let the loop fall back). */
    ca_error *(*create)(ca_backend **out);
    /**
     * Submits the operations queued since the last poll and waits until one
     * completes, a wake-up arrives or `timeout_ns` passes (0: do not block;
     * -1: no limit). Completions are dispatched before it returns. Consumes
     * pending wake-ups. Returns the number of events it handled (wake-ups
     * count), or an OSError for failures other than EINTR/ETIME/EAGAIN
     * (which return 0).
     */
    ca_error *(*poll)(ca_backend *b, int64_t timeout_ns, int *nevents);
    /** Wakes a poll in progress or the next one. Safe from any thread,
     *  async-signal-safe (one eventfd write). */
    void (*wake)(ca_backend *b);
    /** Releases everything the backend owns. Operations still in flight are
     *  cancelled and their completions dispatched first, so no buffer is
     *  written after this returns. */
    void (*close)(ca_backend *b);
    /** Queues `op` (state IDLE, fields filled in); it goes to the kernel at
     *  the next poll at the latest. Never fails: a failure to start the op
     *  is reported as its completion. */
    void (*submit)(ca_backend *b, ca_io_op *op);
    /** Asks for an in-flight op to end early. Its completion still comes,
     *  through poll: -ECANCELED, or its real result when it won the race. */
    void (*cancel)(ca_backend *b, ca_io_op *op);
    /** Forgets what the backend remembers about `fd` (epoll's registration)
     *  before the fd is closed. No op may be in flight on it, except
     *  cancelled ones; io_uring turns their SQEs not submitted yet into
     *  NOPs, which would otherwise act on a socket reusing the number. */
    void (*forget_fd)(ca_backend *b, int fd);
    /** Copies the counters. */
    void (*stats)(const ca_backend *b, ca_backend_stats *out);
    /** The size of the buffers CA_IO_F_BUF_SELECT receives complete in, or 0
     *  when the backend has none (epoll; io_uring before 6.0). Sets the
     *  buffer ring up on first use. */
    uint32_t (*provided_buffers)(ca_backend *b);
    /** Gives a provided buffer (cqe_bid of a completion) back to the kernel. */
    void (*buffer_return)(ca_backend *b, uint16_t bid);
    /** Whether READ/WRITE/OPENAT/FSYNC/CLOSE on files can be submitted
     *  (io_uring with those opcodes; never epoll, where files are always
     *  ready and would block the loop). */
    bool (*file_ops)(const ca_backend *b);
} ca_backend_ops;

/** Grows `table`, an array of `*n` entries of `elem` bytes indexed by fd,
 *  so that it holds `fd` (fd >= 0): doubling from 64, new entries zeroed.
 *  Returns the new array, *n updated; NULL when out of memory, the old
 *  array and *n unchanged. Every fd-indexed table (io.c, epoll) grows
 *  through it. */
void *ca_fd_table_grow(void *table, size_t *n, size_t elem, int fd);

/** Adds one to the eventfd `fd`: both backends' wake(). Async-signal-safe
 *  (one write(2)) and errno is left as the caller had it. A failure is
 *  ignored: EAGAIN (epoll's non-blocking eventfd at a counter of 2^64-2)
 *  means a wake-up is pending already, and the blocking one of io_uring
 *  could only block there too. */
void ca_eventfd_signal(int fd);

extern const ca_backend_ops ca_backend_uring_ops;
extern const ca_backend_ops ca_backend_epoll_ops;

/** Chooses and creates a backend for `kind`, honouring ASYNCIO_BACKEND for
 *  CA_BACKEND_AUTO and falling back from io_uring to epoll when io_uring is
 *  refused. Stores the ops and the instance. */
ca_error *ca_backend_open(ca_backend_kind kind, const ca_backend_ops **ops, ca_backend **out);

#endif
