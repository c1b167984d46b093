/*
 * io.h — asyncio's low-level loop I/O API (Lib/asyncio/selector_events.py
 * sock_* and add_reader), byte buffers, errno → OSError subclasses, and the
 * fault-injection hook the I/O tests use.
 *
 * Every operation is completion-based: on io_uring each is one SQE whose
 * CQE resolves the returned future; the epoll backend performs the same
 * system call when the fd is ready. Futures are returned rather than
 * coroutines (await them with CA_AWAIT). Cancelling one cancels the
 * operation in the kernel (ASYNC_CANCEL); data that completes in the race is
 * kept for the next operation on the fd, never dropped — unless the fd was
 * forgotten (closed through the loop) meanwhile: then it belonged to a file
 * that is gone, and is dropped (a connection closed) rather than handed to
 * whatever reuses the number.
 *
 * File descriptors given to these functions may be blocking: no operation
 * blocks the loop (the epoll backend makes an fd non-blocking before it
 * accepts or connects on it; receives and sends pass MSG_DONTWAIT). Close
 * them with ca_loop_sock_close (or call ca_loop_forget_fd before close(2)):
 * the epoll backend keeps each fd registered, and a reused fd number must
 * not inherit a stale registration.
 */
#ifndef CASYNCIO_IO_H
#define CASYNCIO_IO_H

#include <sys/socket.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/* MARK: - Bytes */

/**
 * A refcounted, mutable byte buffer: bytes and bytearray in one type.
 * `data` points at `cap` bytes of which the first `len` are meaningful.
 * Results of reads are ca_bytes held as OBJECT values.
 */
typedef struct ca_bytes {
    ca_object ob_base;
    size_t len;
    size_t cap;
    uint8_t *data;   /* inline storage right after the header, unless grown */
    size_t inline_cap_; /* private: the size of that inline storage */
} ca_bytes;

extern const ca_type ca_BytesType;

/** A new empty buffer with room for `cap` bytes (new reference; NULL when
 *  out of memory). Small and medium buffers come from freelists. */
ca_bytes *ca_bytes_new(size_t cap);

/** A new buffer holding a copy of `len` bytes at `data` (new reference;
 *  NULL when out of memory). */
ca_bytes *ca_bytes_from(const void *data, size_t len);

/** Makes room for at least `cap` bytes, keeping the contents (the data may
 *  move). MemoryError on failure, the buffer unchanged. */
ca_error *ca_bytes_reserve(ca_bytes *b, size_t cap);

/** Appends `len` bytes, growing as needed. MemoryError on failure. */
ca_error *ca_bytes_append(ca_bytes *b, const void *data, size_t len);

/** True when `op` is a ca_bytes. */
bool ca_bytes_check(const void *op);

/* MARK: - Errors */

/* The OSError subclasses Python picks by errno (Objects/exceptions.c) that
 * error.h does not declare. */
extern const ca_error_type ca_BlockingIOError;     /* < OSError: EAGAIN, EALREADY, EINPROGRESS */
extern const ca_error_type ca_ChildProcessError;   /* < OSError: ECHILD */
extern const ca_error_type ca_FileExistsError;     /* < OSError: EEXIST */
extern const ca_error_type ca_FileNotFoundError;   /* < OSError: ENOENT */
extern const ca_error_type ca_InterruptedError;    /* < OSError: EINTR */
extern const ca_error_type ca_IsADirectoryError;   /* < OSError: EISDIR */
extern const ca_error_type ca_NotADirectoryError;  /* < OSError: ENOTDIR */
extern const ca_error_type ca_PermissionError;     /* < OSError: EACCES, EPERM */
extern const ca_error_type ca_ProcessLookupError;  /* < OSError: ESRCH */

/** The OSError subclass Python raises for `err_no` (ECONNRESET →
 *  ConnectionResetError, EPIPE/ESHUTDOWN → BrokenPipeError, ECONNREFUSED →
 *  ConnectionRefusedError, ECONNABORTED → ConnectionAbortedError, ETIMEDOUT
 *  → TimeoutError, ...; plain OSError for the rest). */
const ca_error_type *ca_error_type_for_errno(int err_no);

/**
 * An error of the subclass for `err_no` carrying it, whose message names
 * the operation: "[Errno 104] Connection reset by peer: recv". `op` may be
 * NULL. Returns a new reference (never NULL).
 */
ca_error *ca_error_from_io(int err_no, const char *op);

/* MARK: - Socket operations (loop.sock_*) */

/**
 * sock_recv(fd, nbytes): reads up to `nbytes` bytes. The future's result is
 * a ca_bytes (OBJECT value; len 0 at end of stream). Data left over from a
 * cancelled receive on this fd is returned first, without I/O. *out gets a
 * new reference. Errors (returned at once): ValueError for nbytes 0,
 * RuntimeError "Event loop is closed", MemoryError; I/O errors arrive as
 * the future's exception (ConnectionResetError, ...).
 */
ca_error *ca_loop_sock_recv(ca_loop *loop, int fd, size_t nbytes, ca_future **out);

/**
 * sock_recv_into(fd, buf): reads up to buf->cap bytes into buf->data,
 * sets buf->len and resolves to the count (INT value). A reference to `buf`
 * is held until the kernel is done with it — after a cancellation too — so
 * the buffer is never written after it is freed; do not touch its contents
 * until the future is done. Errors as ca_loop_sock_recv.
 */
ca_error *ca_loop_sock_recv_into(ca_loop *loop, int fd, ca_bytes *buf, ca_future **out);

/**
 * sock_sendall(fd, data): sends every byte, resubmitting after short sends;
 * resolves to None. A reference to `data` is held until the kernel is done
 * with it. If the future is cancelled, an unknown prefix has been sent, as
 * in asyncio. Errors: BrokenPipeError, ConnectionResetError, ... as the
 * future's exception.
 */
ca_error *ca_loop_sock_sendall(ca_loop *loop, int fd, ca_bytes *data, ca_future **out);

/** sock_sendall with a copy of `len` bytes at `data` (one allocation). */
ca_error *ca_loop_sock_sendall_copy(ca_loop *loop, int fd, const void *data, size_t len, ca_future **out);

/**
 * sock_accept(fd): accepts one connection; resolves to its fd (INT value),
 * non-blocking and close-on-exec, which the caller owns (getpeername gives
 * the address). A connection accepted in the race with a cancellation is
 * kept for the next sock_accept on `fd`.
 */
ca_error *ca_loop_sock_accept(ca_loop *loop, int fd, ca_future **out);

/**
 * sock_connect(fd, address): connects; resolves to None. `addr` is copied.
 * Errors: ConnectionRefusedError, TimeoutError, ... as the future's
 * exception, the message naming the address. ValueError when addrlen is
 * larger than a sockaddr_storage.
 */
ca_error *ca_loop_sock_connect(ca_loop *loop, int fd, const struct sockaddr *addr, socklen_t addrlen,
                               ca_future **out);

/**
 * Closes `fd` after forgetting what the loop remembers about it (readers,
 * writers, data and connections kept from cancelled operations, the epoll
 * registration). No operation may be in flight on it. OSError from close(2).
 */
ca_error *ca_loop_sock_close(ca_loop *loop, int fd);

/**
 * Forgets `fd` as ca_loop_sock_close does, without closing it, and starts
 * a new generation of the number: what an operation started before brings
 * in afterwards (bytes or a connection that beat its cancellation) is
 * dropped — an accepted fd closed — never kept for the file that reuses
 * the number, and such an operation is not retried on it (EBADF).
 */
void ca_loop_forget_fd(ca_loop *loop, int fd);

/* MARK: - Readers and writers (poll-based, level-triggered like selectors) */

/**
 * add_reader(fd, fn, arg): calls fn(arg) from the ready queue in every
 * iteration in which `fd` is readable, until removed. Replaces (and
 * releases) a previous reader of `fd`. `release` (may be NULL) runs when the
 * reader is removed or replaced or the loop closes. Errors: RuntimeError
 * "Event loop is closed", MemoryError (release runs on error).
 */
ca_error *ca_loop_add_reader(ca_loop *loop, int fd, ca_callback_fn fn, void *arg, ca_release_fn release);

/** remove_reader(fd): true when a reader was registered. */
bool ca_loop_remove_reader(ca_loop *loop, int fd);

/** add_writer(fd, fn, arg): as add_reader, for writability. */
ca_error *ca_loop_add_writer(ca_loop *loop, int fd, ca_callback_fn fn, void *arg, ca_release_fn release);

/** remove_writer(fd): true when a writer was registered. */
bool ca_loop_remove_writer(ca_loop *loop, int fd);

/* MARK: - Introspection */

/** Counters of the loop's I/O backend. */
typedef struct ca_io_stats {
    uint64_t submitted;     /* operations handed to the kernel (SQEs, or attempted syscalls) */
    uint64_t completions;   /* completions dispatched */
    uint64_t sq_full;       /* io_uring: times the SQ was full and was flushed to make room */
    uint64_t cq_overflow;   /* io_uring: times the kernel reported an overflowed CQ */
    uint64_t syscalls;      /* io_uring_enter / epoll_wait calls made while polling */
    uint64_t race_kept;     /* completions that won a race with cancellation, kept for the next op */
    uint64_t faults;        /* faults injected */
} ca_io_stats;

/** Reads the counters. */
void ca_loop_io_stats(const ca_loop *loop, ca_io_stats *out);

/** Operations in flight (submitted, not finally completed). */
size_t ca_loop_io_pending(const ca_loop *loop);

/* MARK: - Fault injection (tests) */

/** Which operation a fault hook is asked about. */
typedef enum ca_io_opcode {
    CA_IO_NOP = 0,     /* completes with 0 */
    CA_IO_RECV = 1,    /* recv: bytes read, 0 at EOF */
    CA_IO_SEND = 2,    /* send: bytes written */
    CA_IO_ACCEPT = 3,  /* accept4: the new fd */
    CA_IO_CONNECT = 4, /* connect: 0 */
    CA_IO_POLL = 5,    /* wait for readiness: the revents seen */
    CA_IO_RECVMSG = 6, /* recvmsg (datagrams): bytes read */
    CA_IO_SENDMSG = 7, /* sendmsg (datagrams): bytes written */
    CA_IO_READ = 8,    /* file pread: bytes read, 0 at EOF */
    CA_IO_WRITE = 9,   /* file pwrite: bytes written */
    CA_IO_OPENAT = 10, /* openat: the new fd */
    CA_IO_FSYNC = 11,  /* fsync / fdatasync: 0 */
    CA_IO_CLOSE = 12,  /* close: 0 */
} ca_io_opcode;

/** What a fault hook does to one submission. Zeroed: nothing. */
typedef struct ca_io_fault_action {
    int error;          /* > 0: complete with -error without doing the op (ECONNRESET, EAGAIN, ...) */
    bool eof;           /* complete with 0 without doing the op (a recv that sees EOF) */
    uint32_t max_len;   /* > 0: clamp a RECV/SEND to this many bytes (a short read or send) */
    bool sq_full;       /* io_uring: the op finds the SQ full and takes the flush-and-retry path */
    int32_t race_result; /* > 0: complete with this result without doing the op, even when it is
                            cancelled (and its fd forgotten) meanwhile: the op finished in the kernel
                            before the cancel reached it. A RECV's buffer is left as it is; an
                            ACCEPT's result is taken as the accepted fd (the loop then owns it). */
} ca_io_fault_action;

/** Asked before every submission on the loop (on the loop thread). */
typedef void (*ca_io_fault_fn)(void *arg, ca_io_opcode opcode, int fd, size_t len, ca_io_fault_action *action);

/** Installs `fn` (NULL removes the hook). The hook and `arg` are borrowed. */
void ca_loop_set_io_fault_hook(ca_loop *loop, ca_io_fault_fn fn, void *arg);

/** Tests: the SQ size of io_uring loops created afterwards on the calling
 *  thread (0 restores the default of 256); a small ring makes a full SQ and
 *  an overflowing CQ easy to reach. */
void ca_io_testing_set_uring_entries(unsigned entries);

#ifdef __cplusplus
}
#endif
#endif
