/*
 * files.h — asynchronous file operations, which asyncio does not have:
 * open, read, write, fsync and close returning futures.
 *
 * On io_uring each is one SQE (IORING_OP_OPENAT / READ / WRITE / FSYNC /
 * CLOSE), so a slow disk never blocks the loop thread. Elsewhere (the epoll
 * backend, or a kernel whose ring lacks those opcodes) each runs on the
 * default executor (executor.h) — files are always "ready" to a readiness
 * API, so a thread is the only way not to block. Either way the futures
 * behave the same. Cancelling one that has not started skips it; one
 * already in the kernel or on a thread completes, and what it did stands
 * (an fd opened in that race is closed, bytes written stay written), and
 * a ca_loop_file_close of its fd waits for it to finish.
 *
 * Offsets: a negative `offset` reads or writes at the file's current
 * position (and moves it), like read(2)/write(2); otherwise like pread(2)/
 * pwrite(2). Errors arrive as the future's exception, an OSError subclass
 * with the errno whose message names the operation: "[Errno 2] No such
 * file or directory: open('/tmp/missing')".
 */
#ifndef CASYNCIO_FILES_H
#define CASYNCIO_FILES_H

#include <sys/types.h>

#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * open(path, flags, mode): resolves to the new fd (INT value), which the
 * caller owns (close it with ca_loop_file_close or close(2)). O_CLOEXEC is
 * always added. `path` is copied. Errors returned at once: RuntimeError
 * "Event loop is closed", the run_in_executor errors, MemoryError.
 */
struct ca_error *ca_loop_file_open(ca_loop *loop, const char *path, int flags, mode_t mode, ca_future **out);

/**
 * read(fd, nbytes, offset): one read of up to `nbytes`; resolves to a
 * ca_bytes (OBJECT value, len 0 at end of file). ValueError for nbytes 0.
 */
struct ca_error *ca_loop_file_read(ca_loop *loop, int fd, size_t nbytes, int64_t offset, ca_future **out);

/**
 * write(fd, data, offset): writes every byte of `data` (a reference is held
 * until the kernel or the thread is done with it), resubmitting after
 * short writes; resolves to the count written (INT value).
 */
struct ca_error *ca_loop_file_write(ca_loop *loop, int fd, ca_bytes *data, int64_t offset, ca_future **out);

/** fsync(fd), or fdatasync(fd) when `datasync`; resolves to None. */
struct ca_error *ca_loop_file_fsync(ca_loop *loop, int fd, bool datasync, ca_future **out);

/**
 * close(fd) (after ca_loop_forget_fd); resolves to None. While file
 * operations on `fd` are still in the kernel or on a worker thread (a
 * cancelled one's future is done before that), the close waits for them,
 * so the number cannot be reused under them; the future resolves after.
 */
struct ca_error *ca_loop_file_close(ca_loop *loop, int fd, ca_future **out);

/**
 * Closes `fd` as ca_loop_file_close does, without a future (for
 * destructors): at once when no file operation is in flight on it, else
 * once the last one has finished. Errors of close(2) are ignored. On the
 * loop's thread; on a closed loop it closes at once.
 */
void ca_loop_file_close_later(ca_loop *loop, int fd);

/** Whether this loop's file operations go to the kernel through its ring
 *  (false: they run on the default executor). */
bool ca_loop_files_use_ring(const ca_loop *loop);

#ifdef __cplusplus
}
#endif
#endif
