/*
 * stream.h — asyncio streams (Lib/asyncio/streams.py): StreamReader,
 * StreamWriter, StreamReaderProtocol, open_connection and start_server,
 * over the transports of transport.h.
 *
 * Reads are coroutines, as in asyncio: run them with CA_AWAIT_CORO inside a
 * kit body (or as tasks); each returns a ca_bytes (OBJECT value). A read
 * that finds its data buffered returns without suspending.
 */
#ifndef CASYNCIO_STREAM_H
#define CASYNCIO_STREAM_H

#include "transport.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_stream_reader ca_stream_reader;
typedef struct ca_stream_writer ca_stream_writer;

extern const ca_type ca_StreamReaderType;
extern const ca_type ca_StreamWriterType;

/** streams._DEFAULT_LIMIT: 64 KiB. */
#define CA_STREAM_DEFAULT_LIMIT ((size_t)64 * 1024)

/* MARK: - StreamReader */

/** StreamReader(limit, loop): a new reader (new reference; NULL when out
 *  of memory). `limit` 0 means the default. */
ca_stream_reader *ca_stream_reader_new(ca_loop *loop, size_t limit);

/** feed_data(data): appends a copy; pauses the transport's reading past
 *  twice the limit. MemoryError when the buffer cannot grow. */
struct ca_error *ca_stream_reader_feed_data(ca_stream_reader *r, const void *data, size_t len);

/** feed_eof(): no more data will come; wakes a waiting read. */
void ca_stream_reader_feed_eof(ca_stream_reader *r);

/** set_exception(exc): keeps a reference; every later read raises it. */
void ca_stream_reader_set_exception(ca_stream_reader *r, struct ca_error *exc);

/** exception(): the stored error (borrowed) or NULL. */
struct ca_error *ca_stream_reader_exception(const ca_stream_reader *r);

/** at_eof(): EOF was fed and the buffer is empty. */
bool ca_stream_reader_at_eof(const ca_stream_reader *r);

/** feed_eof() was called (reader._eof): no more data will come, though
 *  some may still be buffered. */
bool ca_stream_reader_eof_received(const ca_stream_reader *r);

/** The number of bytes buffered (len(reader._buffer)). */
size_t ca_stream_reader_buffered(const ca_stream_reader *r);

/** set_transport(t): the transport whose reading the reader pauses
 *  (borrowed; the protocol keeps it valid). */
void ca_stream_reader_set_transport(ca_stream_reader *r, ca_transport *t);

/**
 * read(n): up to `n` bytes (n < 0: everything until EOF); b"" at EOF. The
 * coroutine (new reference; NULL when out of memory) raises the reader's
 * exception, or RuntimeError "read() called while another coroutine is
 * already waiting for incoming data".
 */
ca_coro *ca_stream_reader_read(ca_stream_reader *r, int64_t n);

/** readline(): up to and including b"\n"; the partial line at EOF; a line
 *  longer than the limit raises ValueError (its bytes are discarded). */
ca_coro *ca_stream_reader_readline(ca_stream_reader *r);

/** readexactly(n): exactly `n` bytes, or IncompleteReadError ("3 bytes
 *  read on a total of 10 expected bytes") whose payload is the partial
 *  data (OBJECT ca_bytes). ValueError for n < 0. */
ca_coro *ca_stream_reader_readexactly(ca_stream_reader *r, int64_t n);

/**
 * readuntil(separator): the data up to and including `separator` (copied;
 * at least one byte, else ValueError). IncompleteReadError at EOF (payload:
 * the partial data); LimitOverrunError when the limit is exceeded before a
 * separator (payload: INT consumed), leaving the data buffered.
 */
ca_coro *ca_stream_reader_readuntil(ca_stream_reader *r, const void *separator, size_t seplen);

/* MARK: Reading without a coroutine
 *
 * The pieces the read coroutines are made of, for callers that await
 * futures themselves (the Swift layer): look at the buffer, take from it,
 * and wait for more. Nothing is allocated but the waiter, and data never
 * leaves the reader until it is consumed, so a wait that is cancelled
 * loses nothing. */

/** The buffered bytes in place: *len of them at the returned address
 *  (borrowed; valid until the next feed_data or consume). */
const uint8_t *ca_stream_reader_peek(const ca_stream_reader *r, size_t *len);

/** Drops the first `n` buffered bytes (at most what is buffered), resuming
 *  the transport's reading once the buffer is back under the limit. */
void ca_stream_reader_consume(ca_stream_reader *r, size_t n);

/**
 * _wait_for_data(func_name) up to its await: a future (new reference in
 * *out) that resolves to None once data or EOF is fed, or to the reader's
 * exception. Resumes a paused transport first (waiting on a paused one
 * would never end). When the future is done, or when the caller gives up
 * on it (cancels it), call ca_stream_reader_wait_done. Errors: RuntimeError
 * "<func_name>() called while another coroutine is already waiting for
 * incoming data", MemoryError.
 */
struct ca_error *ca_stream_reader_wait_for_data(ca_stream_reader *r, const char *func_name, ca_future **out);

/** The `finally: self._waiter = None` of _wait_for_data: forgets `waiter`
 *  (borrowed) if it is still the reader's. */
void ca_stream_reader_wait_done(ca_stream_reader *r, ca_future *waiter);

/* MARK: - StreamWriter */

/** write(data): transport.write. */
struct ca_error *ca_stream_writer_write(ca_stream_writer *w, const void *data, size_t len);

/** writelines(list). */
struct ca_error *ca_stream_writer_writelines(ca_stream_writer *w, const struct iovec *iov, int iovcnt);

/** write_eof(): transport.write_eof() (shutdown after the buffer drains). */
struct ca_error *ca_stream_writer_write_eof(ca_stream_writer *w);
/** can_write_eof(): true for sockets. */
bool ca_stream_writer_can_write_eof(const ca_stream_writer *w);

/** close(): transport.close(). */
void ca_stream_writer_close(ca_stream_writer *w);

/** is_closing(). */
bool ca_stream_writer_is_closing(const ca_stream_writer *w);

/**
 * drain(): waits until the transport's write buffer is below its low-water
 * mark (returns at once while it is not paused). The coroutine (new
 * reference; NULL when out of memory) raises the reader's exception, or
 * ConnectionResetError "Connection lost" once the connection is gone.
 */
ca_coro *ca_stream_writer_drain(ca_stream_writer *w);

/** True when drain() would return at once without an error: the
 *  transport is open and not paused for writing, and the reader holds no
 *  exception. A caller may then skip the coroutine. */
bool ca_stream_writer_drain_ready(const ca_stream_writer *w);

/** wait_closed(): waits until the connection is lost; raises the error it
 *  was lost with, if any. */
ca_coro *ca_stream_writer_wait_closed(ca_stream_writer *w);

/** The transport (borrowed). */
ca_transport *ca_stream_writer_transport(const ca_stream_writer *w);

/** The reader of the same connection (borrowed; NULL for a writer made
 *  without one). */
ca_stream_reader *ca_stream_writer_reader(const ca_stream_writer *w);

/* MARK: - Connections and servers */

/**
 * open_connection(host, port, limit=): create_connection with a
 * StreamReaderProtocol; the future resolves to the StreamWriter (OBJECT
 * value; its reader: ca_stream_writer_reader). `limit` 0: the default.
 * Errors as ca_loop_create_connection.
 */
struct ca_error *ca_open_connection(ca_loop *loop, const char *host, uint16_t port, size_t limit, ca_future **out);

/** open_unix_connection(path, limit=). */
struct ca_error *ca_open_unix_connection(ca_loop *loop, const char *path, size_t limit, ca_future **out);

/**
 * client_connected_cb(reader, writer): called (borrowed references; incref
 * to keep) for each connection. Returns a coroutine (taken) that runs as a
 * task, or NULL when there is nothing to run. A task that raises closes the
 * connection and reports to the exception handler, as asyncio does.
 */
typedef ca_coro *(*ca_stream_client_cb)(ca_stream_reader *reader, ca_stream_writer *writer, void *arg);

/** start_server(client_connected_cb, host, port, limit=): create_server with
 *  a StreamReaderProtocol per connection. `arg` is borrowed by every call. */
struct ca_error *ca_start_server(ca_loop *loop, ca_stream_client_cb cb, void *arg, const char *host, uint16_t port,
                                 size_t limit, const ca_server_options *opts, ca_server **out);

/** start_unix_server(client_connected_cb, path, limit=). */
struct ca_error *ca_start_unix_server(ca_loop *loop, ca_stream_client_cb cb, void *arg, const char *path,
                                      size_t limit, const ca_server_options *opts, ca_server **out);

/**
 * start_server for a callback whose `arg` the server owns: as
 * ca_start_server, and `release(arg)` (may be NULL) runs once the server no
 * longer needs it — when the server object is freed (it is closed, its
 * last connection is gone and the last reference dropped), or before an
 * error is returned. Connections hold their server, so `arg` outlives
 * every client_connected_cb call.
 */
struct ca_error *ca_start_server_owning(ca_loop *loop, ca_stream_client_cb cb, void *arg, ca_release_fn release,
                                        const char *host, uint16_t port, size_t limit,
                                        const ca_server_options *opts, ca_server **out);

/** start_unix_server with an owned `arg`, as ca_start_server_owning. */
struct ca_error *ca_start_unix_server_owning(ca_loop *loop, ca_stream_client_cb cb, void *arg, ca_release_fn release,
                                             const char *path, size_t limit, const ca_server_options *opts,
                                             ca_server **out);

#ifdef __cplusplus
}
#endif
#endif
