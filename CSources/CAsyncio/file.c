/*
 * file.c — asynchronous file operations (files.h): one SQE each on
 * io_uring, a job on the default executor elsewhere.
 *
 * A request is a Future subclass holding its operation. On the ring the
 * operation completes through io.c's dispatch like a socket's; on the
 * executor path the request waits on the job's future and copies its
 * outcome, so both paths resolve the same future type with the same
 * results and cancellation. The worker thread touches only the request's
 * plain fields (fd, path, buffer bytes, offsets), never a reference count.
 */
#include "executor_internal.h"

#include <casyncio/files.h>

#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef enum file_kind { FILE_OPEN, FILE_READ, FILE_WRITE, FILE_FSYNC, FILE_CLOSE } file_kind;

static const char *const file_op_name[] = {"open", "read", "write", "fsync", "close"};

typedef struct file_req {
    ca_future fut;
    ca_io_op op;
    uint8_t kind;            /* file_kind */
    bool datasync;
    int fd;
    int flags;               /* OPEN */
    mode_t mode;             /* OPEN */
    char *path;              /* OPEN (owned) */
    ca_bytes *buf;           /* READ target / WRITE data (strong) */
    size_t done;             /* WRITE: bytes written so far */
    int64_t offset;          /* < 0: the current position */
    ca_future *job;          /* the executor's future, on that path (strong) */
    int64_t job_res;         /* the worker's result (-errno), -1 until it ran */
    bool fd_taken;           /* OPEN on the executor: the fd went to the future or was closed */
    bool held;               /* executor: holds the fd (ca_io_fd_hold) until the thread is done */
    ca_io_idle idle;         /* CLOSE waiting for the fd's operations to end */
} file_req;

static ca_error *file_start(file_req *r, ca_future **out);

static bool file_req_cancel(ca_future *fut, const char *msg);
static void file_req_dealloc(ca_object *op);

static const ca_future_type file_req_type = {
    .ft_base = {"Future", sizeof(file_req), file_req_dealloc, &ca_FutureType},
    .ft_cancel = file_req_cancel,
};

static void file_req_dealloc(ca_object *op) {
    file_req *r = (file_req *)op;
    if (CA_UNLIKELY(r->fut.fut_log_tb)) {
        ca_future_finalize(&r->fut);
        if (op->ob_refcnt > 0) return;
    }
    CA_CLEAR(r->buf);
    CA_CLEAR(r->job);
    ca_free(r->path);
    ca_future_clear_head(&r->fut);
    ca_free(r);
}

static bool file_req_cancel(ca_future *fut, const char *msg) {
    if (!ca_future_cancel_impl(fut, msg)) return false;
    file_req *r = (file_req *)fut;
    if (r->job != NULL) ca_future_cancel(r->job, msg);
    else ca_io_cancel(fut->fut_loop, &r->op);
    return true;
}

static void file_req_fail(file_req *r, int err_no) {
    char what[300];
    if (r->kind == FILE_OPEN) snprintf(what, sizeof what, "open('%s')", r->path);
    else snprintf(what, sizeof what, "%s", file_op_name[r->kind]);
    ca_error *exc = ca_error_from_io(err_no, what);
    ca_decref(ca_future_set_exception_impl(&r->fut, exc));
    ca_decref(exc);
}

/** Resolves with the final result `res` (>= 0) of the whole operation. */
static void file_req_succeed(file_req *r, int64_t res) {
    ca_value v;
    switch ((file_kind)r->kind) {
    case FILE_OPEN: v = ca_int(res); break;
    case FILE_READ:
        r->buf->len = (size_t)res;
        v = ca_obj(r->buf);
        r->buf = NULL;
        break;
    case FILE_WRITE: v = ca_int(res); break;
    default: v = ca_none(); break;
    }
    ca_decref(ca_future_set_result_impl(&r->fut, v));
}

/* MARK: - Operations in flight per fd
 *
 * A cancelled operation's future is done at once, but the kernel or a
 * worker thread may still be in it, using the fd number: a close of the fd
 * waits until nothing is in flight on it (io.c counts ring operations;
 * executor jobs hold the fd). */

/** Runs a close that no longer waits: close(2) at once on a closed loop,
 *  else the operation. Takes the reference file_close_wait took. */
static void file_close_go(ca_io_idle *w, ca_loop *loop, int fd) {
    file_req *c = CA_CONTAINER_OF(w, file_req, idle);
    if (loop->closed) {
        close(c->fd); /* (a closed loop resolves nothing any more) */
        ca_decref(c);
        return;
    }
    /* file_start hands the wait's reference out again, or drops it on
     * failure; an extra one keeps `c` alive to be failed */
    ca_incref(c);
    ca_future *out;
    ca_error *err = file_start(c, &out);
    if (err != NULL) {
        close(c->fd);
        ca_decref(ca_future_set_exception_impl(&c->fut, err));
        ca_decref(err);
    } else {
        ca_decref(out);
    }
    ca_decref(c);
}

/** The executor thread is done with `r`: when it was the last user of
 *  its fd, the closes waiting for that run now. */
static void file_release_fd(file_req *r) {
    if (!r->held) return;
    r->held = false;
    ca_io_fd_release(r->fut.fut_loop, r->fd);
}

/* MARK: - The ring */

static void file_req_submit(file_req *r) {
    ca_io_op *op = &r->op;
    op->fd = r->fd;
    op->flags = 0;
    switch ((file_kind)r->kind) {
    case FILE_OPEN:
        op->opcode = CA_IO_OPENAT;
        op->buf = r->path;
        op->msg_flags = r->flags;
        op->len = r->mode;
        break;
    case FILE_READ:
        op->opcode = CA_IO_READ;
        op->buf = r->buf->data;
        op->len = r->buf->cap > UINT32_MAX ? UINT32_MAX : (uint32_t)r->buf->cap;
        op->offset = r->offset < 0 ? (uint64_t)-1 : (uint64_t)r->offset;
        break;
    case FILE_WRITE: {
        size_t left = r->buf->len - r->done;
        op->opcode = CA_IO_WRITE;
        op->buf = r->buf->data + r->done;
        op->len = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
        op->offset = r->offset < 0 ? (uint64_t)-1 : (uint64_t)r->offset + r->done;
        break;
    }
    case FILE_FSYNC:
        op->opcode = CA_IO_FSYNC;
        op->len = r->datasync ? IORING_FSYNC_DATASYNC : 0;
        break;
    case FILE_CLOSE:
        op->opcode = CA_IO_CLOSE;
        break;
    }
    ca_io_submit(r->fut.fut_loop, op);
}

static void file_req_complete(ca_io_op *op, int32_t res, uint32_t cflags) {
    file_req *r = CA_CONTAINER_OF(op, file_req, op);
    if (r->fut.fut_state != CA_FUTURE_PENDING || r->fut.fut_loop->closed) {
        if (r->kind == FILE_OPEN && res >= 0) close(res); /* nobody will own it */
        ca_decref(r);
        return;
    }
    if (res == -EINTR || res == -EAGAIN) {
        file_req_submit(r); /* keeps the operation's reference */
        return;
    }
    if (res < 0) {
        file_req_fail(r, -res);
    } else if (r->kind == FILE_WRITE && res > 0 && (r->done += (size_t)res) < r->buf->len) {
        file_req_submit(r);
        return;
    } else {
        file_req_succeed(r, r->kind == FILE_WRITE ? (int64_t)r->done : res);
    }
    ca_decref(r);
}

/* MARK: - The executor */

/** The blocking call, on a worker thread. Returns the result or -errno. */
static int64_t file_job_syscall(file_req *r) {
    ssize_t n;
    switch ((file_kind)r->kind) {
    case FILE_OPEN:
        do n = open(r->path, r->flags, r->mode);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
    case FILE_READ:
        do n = r->offset < 0 ? read(r->fd, r->buf->data, r->buf->cap)
                             : pread(r->fd, r->buf->data, r->buf->cap, (off_t)r->offset);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -errno : n;
    case FILE_WRITE:
        while (r->done < r->buf->len) {
            const uint8_t *p = r->buf->data + r->done;
            size_t left = r->buf->len - r->done;
            n = r->offset < 0 ? write(r->fd, p, left) : pwrite(r->fd, p, left, (off_t)(r->offset + (int64_t)r->done));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return -errno;
            if (n == 0) return -EIO;
            r->done += (size_t)n;
        }
        return (int64_t)r->done;
    case FILE_FSYNC:
        return (r->datasync ? fdatasync(r->fd) : fsync(r->fd)) < 0 ? -errno : 0;
    case FILE_CLOSE:
        return close(r->fd) < 0 && errno != EINTR ? -errno : 0;
    }
    return -EINVAL;
}

static ca_error *file_job(void *arg, ca_value *result) {
    file_req *r = arg;
    r->job_res = file_job_syscall(r);
    *result = ca_int(r->job_res);
    return NULL;
}

/** An fd an executor open made for a request nobody waits for any more. */
static void file_close_orphan(file_req *r) {
    if (r->kind != FILE_OPEN || r->job_res < 0 || r->fd_taken) return;
    r->fd_taken = true;
    close((int)r->job_res);
}

/* The executor is done with the request (it ran, or was skipped). */
static void file_job_arg_release(void *arg) {
    file_req *r = arg;
    if (r->fut.fut_state != CA_FUTURE_PENDING || r->fut.fut_loop->closed) file_close_orphan(r);
    file_release_fd(r);
    ca_decref(r);
}


/* The job is done (or was cancelled with the request): copy its outcome. */
static void file_job_done(ca_future *job, void *arg) {
    file_req *r = arg;
    ca_value v = ca_none();
    ca_error *err = ca_future_cancelled(job) ? NULL : ca_future_result(job, &v);
    if (err != NULL) ca_decref(err);
    int64_t res = v.kind == CA_VALUE_INT ? v.u.i : -ECANCELED;
    if (r->fut.fut_state != CA_FUTURE_PENDING || r->fut.fut_loop->closed) {
        /* a cancelled job may still be running: its release closes the fd */
        if (!ca_future_cancelled(job)) file_close_orphan(r);
        return;
    }
    r->fd_taken = true;
    if (res < 0) file_req_fail(r, (int)-res);
    else file_req_succeed(r, res);
}

/* MARK: - Entry points */

static ca_error *file_start(file_req *r, ca_future **out) {
    ca_loop *loop = r->fut.fut_loop;
    bool ring = loop->backend_ops->file_ops(loop->backend);
    bool room = true;
    if (r->kind != FILE_OPEN && r->kind != FILE_CLOSE) {
        /* the ring's ops are counted on the fd as they are submitted (the
         * room is made here, so that cannot fail); a job holds the fd */
        if (ring) room = ca_io_fd_get(loop->io, r->fd) != NULL;
        else room = r->held = ca_io_fd_hold(loop, r->fd);
    }
    if (!room) {
        ca_decref(r);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    if (ring) {
        r->op.complete = file_req_complete;
        ca_incref(r);
        file_req_submit(r);
        *out = &r->fut;
        return NULL;
    }
    ca_error *err = ca_loop_run_in_executor(loop, file_job, ca_incref(r), file_job_arg_release, &r->job);
    if (err == NULL) err = ca_future_add_done_callback(r->job, file_job_done, ca_incref(r), ca_release_object, NULL);
    if (err != NULL) {
        if (r->job != NULL) ca_future_cancel(r->job, NULL);
        ca_decref(r);
        return err;
    }
    *out = &r->fut;
    return NULL;
}

static ca_error *file_req_new(ca_loop *loop, file_kind kind, int fd, file_req **out) {
    *out = NULL;
    if (loop->closed) return ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (kind != FILE_OPEN && fd < 0) return ca_error_format(&ca_ValueError, "Invalid file descriptor: %d", fd);
    if (ca_io_loop_get(loop) == NULL) return ca_error_new(&ca_MemoryError, NULL);
    file_req *r = ca_calloc(1, sizeof *r);
    if (r == NULL) return ca_error_new(&ca_MemoryError, NULL);
    ca_object_init(r, &file_req_type.ft_base);
    ca_future_init_head(&r->fut, loop);
    r->kind = (uint8_t)kind;
    r->fd = fd;
    r->offset = -1;
    r->job_res = -1;
    *out = r;
    return NULL;
}

ca_error *ca_loop_file_open(ca_loop *loop, const char *path, int flags, mode_t mode, ca_future **out) {
    *out = NULL;
    if (path == NULL) return ca_error_new(&ca_ValueError, "path must not be NULL");
    file_req *r;
    ca_error *err = file_req_new(loop, FILE_OPEN, -1, &r);
    if (err != NULL) return err;
    r->path = ca_strdup(path);
    if (r->path == NULL) {
        ca_decref(r);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    r->flags = flags | O_CLOEXEC;
    r->mode = mode;
    return file_start(r, out);
}

ca_error *ca_loop_file_read(ca_loop *loop, int fd, size_t nbytes, int64_t offset, ca_future **out) {
    *out = NULL;
    if (nbytes == 0) return ca_error_new(&ca_ValueError, "nbytes must be positive");
    file_req *r;
    ca_error *err = file_req_new(loop, FILE_READ, fd, &r);
    if (err != NULL) return err;
    r->offset = offset;
    r->buf = ca_bytes_new(nbytes);
    if (r->buf == NULL) {
        ca_decref(r);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    return file_start(r, out);
}

ca_error *ca_loop_file_write(ca_loop *loop, int fd, ca_bytes *data, int64_t offset, ca_future **out) {
    *out = NULL;
    if (data == NULL) return ca_error_new(&ca_ValueError, "data must not be NULL");
    file_req *r;
    ca_error *err = file_req_new(loop, FILE_WRITE, fd, &r);
    if (err != NULL) return err;
    r->offset = offset;
    r->buf = ca_incref(data);
    if (data->len == 0) {
        file_req_succeed(r, 0);
        *out = &r->fut;
        return NULL;
    }
    return file_start(r, out);
}

ca_error *ca_loop_file_fsync(ca_loop *loop, int fd, bool datasync, ca_future **out) {
    *out = NULL;
    file_req *r;
    ca_error *err = file_req_new(loop, FILE_FSYNC, fd, &r);
    if (err != NULL) return err;
    r->datasync = datasync;
    return file_start(r, out);
}

ca_error *ca_loop_file_close(ca_loop *loop, int fd, ca_future **out) {
    *out = NULL;
    file_req *r;
    ca_error *err = file_req_new(loop, FILE_CLOSE, fd, &r);
    if (err != NULL) return err;
    ca_loop_forget_fd(loop, fd);
    if (ca_io_fd_busy(loop, fd)) {
        ca_incref(r); /* the wait's, which file_close_go takes */
        ca_io_when_idle(loop, fd, &r->idle, file_close_go);
        *out = &r->fut;
        return NULL;
    }
    return file_start(r, out);
}

/* Nobody waits for its outcome: the I/O layer's close once idle is all of it. */
void ca_loop_file_close_later(ca_loop *loop, int fd) { ca_io_close_when_idle(loop, fd); }

bool ca_loop_files_use_ring(const ca_loop *loop) {
    return loop->backend != NULL && loop->backend_ops->file_ops(loop->backend);
}
