/*
 * backend.c — picks the I/O backend: io_uring unless the kernel or a sandbox
 * refuses it, then epoll; ASYNCIO_BACKEND overrides the automatic choice.
 */
#include "backend.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <casyncio/error.h>
#include <casyncio/object.h>

/**
 * Reads ASYNCIO_BACKEND. Unset or empty leaves *kind AUTO. A name counts as
 * an explicit choice, with no fallback: whoever asked for io_uring wants to
 * hear that it was refused rather than quietly get epoll.
 */
static ca_error *backend_kind_from_env(ca_backend_kind *kind) {
    const char *name = getenv("ASYNCIO_BACKEND");
    if (name == NULL || name[0] == '\0') return NULL;
    if (strcmp(name, "uring") == 0 || strcmp(name, "io_uring") == 0) {
        *kind = CA_BACKEND_URING;
    } else if (strcmp(name, "epoll") == 0) {
        *kind = CA_BACKEND_EPOLL;
    } else {
        return ca_error_format(&ca_ValueError,
                               "ASYNCIO_BACKEND must be 'uring', 'io_uring' or 'epoll', not '%s'",
                               name);
    }
    return NULL;
}

/** The io_uring_setup failures that mean "not here" rather than "broken":
 *  no syscall (old kernel, gVisor), a seccomp or sysctl refusal
 *  (kernel.io_uring_disabled), or a RLIMIT_MEMLOCK too small for the rings
 *  on kernels before 5.12. */
static bool backend_uring_refused(const ca_error *err) {
    if (!ca_error_matches(err, &ca_OSError)) return false;
    switch (err->err_no) {
    case ENOSYS:
    case EPERM:
    case EACCES:
    case ENOMEM:
        return true;
    default:
        return false;
    }
}

ca_error *ca_backend_open(ca_backend_kind kind, const ca_backend_ops **ops, ca_backend **out) {
    if (kind == CA_BACKEND_AUTO) {
        ca_error *err = backend_kind_from_env(&kind);
        if (err != NULL) return err;
    }

    const ca_backend_ops *chosen;
    switch (kind) {
    case CA_BACKEND_AUTO: {
        ca_error *err = ca_backend_uring_ops.create(out);
        if (err == NULL) {
            *ops = &ca_backend_uring_ops;
            return NULL;
        }
        if (!backend_uring_refused(err)) return err;
        ca_decref(err);
        chosen = &ca_backend_epoll_ops;
        break;
    }
    case CA_BACKEND_URING:
        chosen = &ca_backend_uring_ops;
        break;
    case CA_BACKEND_EPOLL:
        chosen = &ca_backend_epoll_ops;
        break;
    default:
        return ca_error_format(&ca_ValueError, "unknown backend kind %d", (int)kind);
    }

    ca_error *err = chosen->create(out);
    if (err == NULL) *ops = chosen;
    return err;
}

void *ca_fd_table_grow(void *table, size_t *n, size_t elem, int fd) {
    size_t cap = *n ? *n : 64;
    while (cap <= (size_t)fd) cap *= 2;
    uint8_t *t = ca_realloc(table, cap * elem);
    if (t == NULL) return NULL;
    memset(t + *n * elem, 0, (cap - *n) * elem);
    *n = cap;
    return t;
}

void ca_eventfd_signal(int fd) {
    int saved_errno = errno;
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n;
    errno = saved_errno;
}
