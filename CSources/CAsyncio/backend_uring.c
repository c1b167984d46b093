/*
 * backend_uring.c — the io_uring backend: one ring, plus an eventfd with a
 * READ kept armed on it so that wake() (an eventfd write from any thread)
 * completes a CQE and ends a wait in io_uring_submit_and_wait_timeout.
 */
#include "backend.h"
#include "internal.h"

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <casyncio/error.h>
#include <casyncio/object.h>

/* Enough for a busy iteration's batch; the CQ ring is twice this. */
#define URING_ENTRIES 256

/* user_data of the wake-up READ. Operations will carry pointers, which are
 * aligned, so an odd tag can never collide with one. */
#define URING_WAKE_TAG ((uint64_t)1)

#define NS_PER_SEC INT64_C(1000000000)

struct ca_backend {
    struct io_uring ring;
    int wake_fd;
    bool wake_armed;     /* a READ on wake_fd is queued or in flight */
    bool needs_enable;   /* created IORING_SETUP_R_DISABLED; enabled by the first poll */
    bool taskrun_flag;   /* the kernel raises IORING_SQ_TASKRUN while completions wait */
    bool single_issuer;  /* the ring only accepts submissions from owner_tid */
    uint64_t owner_tid;  /* the thread that enabled a SINGLE_ISSUER ring */
    uint64_t wake_buf;   /* the READ's target: must outlive the SQE, so it lives here */
};

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
 *  The kernel always creates the ring fd O_CLOEXEC. Returns 0 or -errno. */
static int uring_queue_init(struct io_uring *ring, unsigned *flags) {
    int ret = -EINVAL;
    for (size_t i = 0; i < sizeof uring_setup_ladder / sizeof uring_setup_ladder[0]; i++) {
        struct io_uring_params params = {.flags = uring_setup_ladder[i]};
        ret = io_uring_queue_init_params(URING_ENTRIES, ring, &params);
        if (ret != -EINVAL) {
            *flags = uring_setup_ladder[i];
            break;
        }
    }
    return ret;
}

/** Queues (does not submit) the READ on the eventfd: the next poll's single
 *  io_uring_enter submits it along with the loop's own SQEs. */
static ca_error *uring_arm_wake(ca_backend *b) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (sqe == NULL) {
        /* A full SQ: push what is queued to make room. */
        int ret = io_uring_submit(&b->ring);
        if (ret < 0) return ca_error_from_errno(&ca_OSError, -ret, "io_uring_submit");
        sqe = io_uring_get_sqe(&b->ring);
        if (sqe == NULL) return ca_error_from_errno(&ca_OSError, EBUSY, "io_uring_get_sqe");
    }
    io_uring_prep_read(sqe, b->wake_fd, &b->wake_buf, sizeof b->wake_buf, 0);
    io_uring_sqe_set_data64(sqe, URING_WAKE_TAG);
    b->wake_armed = true;
    return NULL;
}

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

    unsigned flags = 0;
    int ret = uring_queue_init(&b->ring, &flags);
    if (ret < 0) {
        err = ca_error_from_errno(&ca_OSError, -ret, "io_uring_queue_init");
        goto fail_free;
    }
    b->needs_enable = (flags & IORING_SETUP_R_DISABLED) != 0;
    b->taskrun_flag = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    b->single_issuer = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;

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

/** Consumes every CQE and counts them; LIBURING_UDATA_TIMEOUT entries are
 *  liburing's own timeout on kernels without EXT_ARG, not events. */
static int uring_reap(ca_backend *b) {
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    int nevents = 0;
    io_uring_for_each_cqe(&b->ring, head, cqe) {
        seen++;
        if (cqe->user_data == LIBURING_UDATA_TIMEOUT) continue;
        if (cqe->user_data == URING_WAKE_TAG) b->wake_armed = false;
        nevents++;
    }
    io_uring_cq_advance(&b->ring, seen);
    return nevents;
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
    return io_uring_submit_and_get_events(&b->ring);
}

/* A SINGLE_ISSUER ring refuses every other thread (EEXIST). When a loop is
 * run from a new thread the ring is rebuilt there: only the wake-up READ is
 * in flight, and the eventfd keeps any wake-up that arrived meanwhile. */
static ca_error *uring_adopt_thread(ca_backend *b) {
    io_uring_queue_exit(&b->ring);
    b->wake_armed = false;
    unsigned flags = 0;
    int ret = uring_queue_init(&b->ring, &flags);
    if (ret < 0) return ca_error_from_errno(&ca_OSError, -ret, "io_uring_queue_init");
    b->needs_enable = (flags & IORING_SETUP_R_DISABLED) != 0;
    b->taskrun_flag = (flags & IORING_SETUP_TASKRUN_FLAG) != 0;
    b->single_issuer = (flags & IORING_SETUP_SINGLE_ISSUER) != 0;
    return NULL;
}

static ca_error *uring_backend_poll(ca_backend *b, int64_t timeout_ns, int *nevents) {
    *nevents = 0;
    if (b->single_issuer && !b->needs_enable && b->owner_tid != ca_thread_id()) {
        ca_error *err = uring_adopt_thread(b);
        if (err != NULL) return err;
    }
    if (b->needs_enable) {
        b->owner_tid = ca_thread_id();
        /* Not io_uring_enable_rings(): liburing 2.3 declares it but its .so
         * does not export it. */
        int ret = io_uring_register(b->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (ret < 0) return ca_error_from_errno(&ca_OSError, -ret, "io_uring_register");
        b->needs_enable = false;
    }
    if (!b->wake_armed) {
        ca_error *err = uring_arm_wake(b);
        if (err != NULL) return err;
    }

    int ret;
    const char *call;
    if (timeout_ns == 0) {
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
        ret = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, tsp, NULL);
        call = "io_uring_submit_and_wait_timeout";
    }
    if (ret < 0 && !uring_wait_is_transient(ret)) return ca_error_from_errno(&ca_OSError, -ret, call);

    *nevents = uring_reap(b);
    if (!b->wake_armed) return uring_arm_wake(b);
    return NULL;
}

/** Async-signal-safe: one write(2), and errno is left as the caller had it.
 *  The eventfd is blocking, but a write could only block at a counter of
 *  2^64-2; short of a closed fd it does not fail. */
static void uring_backend_wake(ca_backend *b) {
    int saved_errno = errno;
    uint64_t one = 1;
    ssize_t n = write(b->wake_fd, &one, sizeof one);
    (void)n;
    errno = saved_errno;
}

/** Once the ring's last reference is gone the kernel cancels, never
 *  completes, the in-flight READ, so its buffer can go with the struct. */
static void uring_backend_close(ca_backend *b) {
    if (b == NULL) return;
    io_uring_queue_exit(&b->ring);
    close(b->wake_fd);
    ca_free(b);
}

const ca_backend_ops ca_backend_uring_ops = {
    .name = "io_uring",
    .create = uring_backend_create,
    .poll = uring_backend_poll,
    .wake = uring_backend_wake,
    .close = uring_backend_close,
};
