/*
 * ts_io.h — helpers the I/O specification tests (Tests/CAsyncioTests/
 * IOTests*.swift) drive the loop's sockets, transports and streams with:
 * echo servers in both styles, stream clients as kit coroutines, a blocking
 * client on its own thread (so faults injected into the loop touch only the
 * server), a scripted fault hook, and small runners with deadlines so a
 * broken build fails a test instead of hanging the suite.
 *
 * Every address is a loopback address. Nothing here keeps global state.
 */
#ifndef TS_IO_H
#define TS_IO_H

#include <casyncio/casyncio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MARK: - Loops and limits */

/** A loop with the given backend (CA_BACKEND_URING or CA_BACKEND_EPOLL),
 *  on the real clock unless `virtual_clock`. */
ca_error *ts_io_loop_new(ca_backend_kind backend, bool virtual_clock, ca_loop **out);

/** Raises RLIMIT_NOFILE's soft limit toward `want` (never past the hard
 *  limit); returns the soft limit in force afterwards. */
uint64_t ts_io_raise_nofile(uint64_t want);

/** Whether the kernel lets this process set up an io_uring at all (a
 *  sandbox may refuse); `why` receives the reason when it does not. */
bool ts_io_uring_available(char *why, size_t size);

/** Runs `loop` until `fut` is done or `timeout_s` passes (then the loop is
 *  stopped and RuntimeError "Event loop stopped before Future completed."
 *  comes back). Returns what run_until_complete returns. */
ca_error *ts_io_run_until(ca_loop *loop, ca_future *fut, double timeout_s);

/** Runs until every future is done, or TimeoutError after `timeout_s`. */
ca_error *ts_io_run_all(ca_loop *loop, ca_future *const *futs, size_t n, double timeout_s);

/** Runs the loop for `seconds` of real time. */
ca_error *ts_io_run_for(ca_loop *loop, double seconds);

/** Runs until `*flag` becomes non-zero (set atomically from any thread,
 *  which then calls ca_loop_stop_threadsafe) or `timeout_s` passes; true
 *  when set. */
bool ts_io_run_until_flag(ca_loop *loop, const int *flag, double timeout_s);

/* MARK: - Data */

/** Fills `buf` with the test pattern of `seed` starting at stream offset
 *  `offset`; a lost, duplicated or reordered byte breaks the pattern. */
void ts_io_pattern(uint8_t *buf, size_t len, uint64_t seed, uint64_t offset);

/** Index of the first byte that differs from the pattern, or -1. */
int64_t ts_io_pattern_mismatch(const uint8_t *buf, size_t len, uint64_t seed, uint64_t offset);

/** Length and data of a ca_bytes held in a value (0/NULL otherwise). */
size_t ts_io_value_bytes(const ca_value *v, const uint8_t **data);

/* MARK: - Protocol-style servers */

typedef enum ts_server_mode {
    TS_SERVER_ECHO = 0,        /* data_received → write; EOF closes */
    TS_SERVER_ECHO_BYE = 1,    /* echo; at EOF keep open, write "BYE", close (half-close) */
    TS_SERVER_PAUSED_SINK = 2, /* pause reading at connection_made; count bytes */
    TS_SERVER_FLOOD = 3,       /* write `flood_bytes` at connection_made, then close */
    TS_SERVER_BUFFERED_ECHO = 4, /* a BufferedProtocol that echoes */
} ts_server_mode;

/** What a test server saw, summed over its connections. */
typedef struct ts_server_stats {
    int mode;                  /* ts_server_mode */
    uint64_t flood_bytes;      /* FLOOD: how much to write */
    int backlog;               /* listen() backlog; 0: asyncio's 100 */
    int made;
    int lost;
    int lost_with_error;
    int eofs;
    int pauses;                /* pause_writing calls */
    int resumes;
    uint64_t bytes_in;
    char last_error[160];      /* "Type: message" of the last connection_lost error */
    ca_transport *last_transport; /* strong: the last connection */
} ts_server_stats;

/** create_server with a test protocol on 127.0.0.1 (`host` NULL), `host`,
 *  or the Unix socket `unix_path`; `stats` must outlive the server. */
ca_error *ts_server_start(ca_loop *loop, const char *host, const char *unix_path, ts_server_stats *stats,
                          ca_server **out);

/** Releases stats->last_transport. */
void ts_server_stats_clear(ts_server_stats *stats);

/** start_server whose client_connected_cb echoes with read(64 KiB) →
 *  write → drain until EOF, then closes (the stream-style echo). */
ca_error *ts_stream_server_start(ca_loop *loop, const char *host, const char *unix_path, ts_server_stats *stats,
                                 ca_server **out);

/* MARK: - Loop-side clients (kit coroutines; run them as tasks) */

/**
 * open_connection, write `size` pattern bytes in `chunk`-sized writes with
 * a drain after each, readexactly(size) the echo, check it, close and
 * wait_closed. Returns `size`; raises on a mismatch (ValueError) or an I/O
 * error. `max_buffer` (may be NULL) receives the largest write-buffer size
 * seen right after a drain (flow control keeps it bounded).
 */
ca_coro *ts_stream_echo_client(const char *host, uint16_t port, const char *unix_path, size_t size, size_t chunk,
                               uint64_t seed, uint64_t *max_buffer);

/** open_connection, write `size` pattern bytes in `chunk`-sized writes
 *  with a drain after each, then close. `*progress` counts the bytes
 *  written so far and `*max_buffer` the largest write-buffer size seen
 *  after a drain. Returns `size`. */
ca_coro *ts_stream_send_client(uint16_t port, size_t size, size_t chunk, uint64_t *progress, uint64_t *max_buffer);

/** open_connection, write `size` bytes, write_eof, read(-1); returns the
 *  number of bytes read, which must be size + 3 ("BYE") against an
 *  ECHO_BYE server; raises ValueError when the data is wrong. */
ca_coro *ts_stream_half_close_client(uint16_t port, size_t size, uint64_t seed);

/** readline / readuntil / readexactly / read against an ECHO server: sends
 *  `script` (copied), then runs the reads `ops` describes ("l" readline,
 *  "u" readuntil(b"\r\n"), "xN" readexactly(N), "rN" read(N)), appending
 *  each result (or "!Type" for an error) to `out` separated by '|'. */
ca_coro *ts_stream_reads_client(uint16_t port, const char *script, size_t script_len, const char *ops, size_t limit,
                                char *out, size_t out_size);

/* MARK: - Protocol-style flood client (backpressure) */

typedef struct ts_flood_stats {
    uint64_t total;            /* bytes to write */
    uint64_t written;          /* bytes handed to write() */
    int pauses;
    int resumes;
    int made;
    int lost;
    size_t max_buffer;         /* largest get_write_buffer_size seen */
    ca_transport *transport;   /* strong while connected */
} ts_flood_stats;

/** create_connection with a protocol that writes 64 KiB chunks while not
 *  paused until `total` bytes were written, then closes. The future
 *  resolves to the transport. */
ca_error *ts_flood_connect(ca_loop *loop, uint16_t port, ts_flood_stats *stats, ca_future **out);

void ts_flood_stats_clear(ts_flood_stats *stats);

/* MARK: - A blocking client on its own thread */

typedef struct ts_thread_client {
    /* in */
    uint16_t port;
    size_t size;
    size_t chunk;
    uint64_t seed;
    bool half_close;           /* shutdown(SHUT_WR) after writing, read until EOF */
    bool reset_after_echo;     /* after the echo: SO_LINGER 0 and close (an RST) */
    ca_loop *loop;             /* stopped (thread-safely) when done */
    /* out */
    int done;                  /* set atomically when the client is finished */
    uint64_t received;
    int64_t mismatch;          /* first wrong byte, or -1 */
    int err_no;                /* the failing call's errno, 0 when all went well */
    char failed_call[32];
    /* private */
    unsigned long thread;
} ts_thread_client;

/** Starts the client thread. */
int ts_thread_client_start(ts_thread_client *c);

/** Joins it. */
void ts_thread_client_join(ts_thread_client *c);

/* MARK: - Faults */

typedef struct ts_fault_rule {
    int opcode;                /* ca_io_opcode to match */
    int skip;                  /* let this many matching ops pass first */
    int count;                 /* then fire this many times (-1: always) */
    ca_io_fault_action action;
    int fired;                 /* out */
} ts_fault_rule;

typedef struct ts_fault_script {
    ts_fault_rule rules[8];
    int nrules;
} ts_fault_script;

/** The ca_io_fault_fn reading a ts_fault_script (the first matching rule
 *  that still has shots left fires). */
void ts_fault_hook(void *arg, ca_io_opcode opcode, int fd, size_t len, ca_io_fault_action *action);

/* MARK: - Raw sockets */

/** A connected AF_UNIX stream pair, non-blocking on sv[0] (the loop's end). */
int ts_io_socketpair(int sv[2]);

/** A blocking write/read of the whole buffer; returns bytes done or -errno. */
int64_t ts_io_write_all(int fd, const void *buf, size_t len);
int64_t ts_io_read_exactly(int fd, void *buf, size_t len);

/** A loopback listening socket (port 0); stores the port. */
int ts_io_listen(uint16_t *port);

/** A socket bound to a free 127.0.0.1 port without listening: connecting
 *  there is refused, and no other test can take the port while the
 *  returned fd stays open. Stores the port; returns the fd or -errno. */
int ts_io_refusing_port(uint16_t *port);

/** Fills sockaddr_in for 127.0.0.1:port. */
void ts_io_loopback(uint16_t port, struct sockaddr_storage *addr, socklen_t *len);

#ifdef __cplusplus
}
#endif
#endif
