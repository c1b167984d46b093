/*
 * backend_epoll.c — the epoll backend, for kernels and sandboxes that refuse
 * io_uring_setup (Docker's default seccomp profile): an epoll instance with a
 * non-blocking eventfd registered for wake-ups.
 */
#include "backend.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <casyncio/error.h>
#include <casyncio/object.h>

/* Events taken per epoll_wait; more stay queued for the next iteration. */
#define EPOLL_BATCH 64

/* epoll_data of the wake-up eventfd; odd, so no registered pointer matches. */
#define EPOLL_WAKE_TAG ((uint64_t)1)

#define NS_PER_SEC INT64_C(1000000000)
#define NS_PER_MS INT64_C(1000000)

/* glibc declares epoll_pwait2 from 2.35; the kernel may still refuse it. */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HAVE_EPOLL_PWAIT2 1
#endif

struct ca_backend {
    int epfd;
    int wake_fd;
    bool use_pwait2;     /* cleared the first time the kernel refuses epoll_pwait2 */
};

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

/** One read resets the eventfd counter, so wakes that piled up before a
 *  poll cost one event. Only the loop thread reads: the read cannot miss. */
static ca_error *epoll_backend_poll(ca_backend *b, int64_t timeout_ns, int *nevents) {
    struct epoll_event events[EPOLL_BATCH];
    *nevents = 0;
    int n = epoll_backend_wait(b, events, timeout_ns);
    if (n < 0) {
        if (errno == EINTR) return NULL;
        return ca_error_from_errno(&ca_OSError, errno, "epoll_wait");
    }
    for (int i = 0; i < n; i++) {
        if (events[i].data.u64 == EPOLL_WAKE_TAG) {
            uint64_t count;
            ssize_t r = read(b->wake_fd, &count, sizeof count);
            (void)r;
        }
    }
    *nevents = n;
    return NULL;
}

/** Async-signal-safe: one write(2), errno preserved. EAGAIN (counter
 *  saturated) means a wake-up is already pending, so it is ignored. */
static void epoll_backend_wake(ca_backend *b) {
    int saved_errno = errno;
    uint64_t one = 1;
    ssize_t n = write(b->wake_fd, &one, sizeof one);
    (void)n;
    errno = saved_errno;
}

static void epoll_backend_close(ca_backend *b) {
    if (b == NULL) return;
    close(b->wake_fd);
    close(b->epfd);
    ca_free(b);
}

const ca_backend_ops ca_backend_epoll_ops = {
    .name = "epoll",
    .create = epoll_backend_create,
    .poll = epoll_backend_poll,
    .wake = epoll_backend_wake,
    .close = epoll_backend_close,
};
