/*
 * casyncio_echo.h — the TCP echo workload of ../shared/reference/workloads.md:
 * echo servers in every style the bench compares (the C core's protocol
 * and streams servers, and minimal liburing and epoll servers as the
 * physical-limit references) and the closed-loop load client.
 */
#ifndef CASYNCIO_ECHO_H
#define CASYNCIO_ECHO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Runs the echo server `impl` on 127.0.0.1:`port` (0: any free port) until
 * the process is killed. impl: "c-protocol" (create_server, data_received →
 * write), "c-streams" (start_server, read → write → drain per connection),
 * "raw" (a minimal liburing server: recv → send → recv per connection, one
 * io_uring_enter per iteration) or "raw-epoll" (epoll, read → write).
 * Once listening it writes "READY <port>\n" to `report_fd`; on SIGUSR1 it
 * writes "RUSAGE <user_us> <sys_us>\n" there (its getrusage). Returns only
 * on a set-up failure: -1 with `err` describing it.
 */
int cab_echo_server(const char *impl, uint16_t port, int report_fd, char *err, size_t errsize);

/**
 * The echo-server protocol for a server of the caller's (the Swift layer's):
 * installs the SIGUSR1 handler that writes "RUSAGE <user_us> <sys_us>\n" to
 * `report_fd`, then writes "READY <port>\n" there. cab_echo_server calls it
 * once listening.
 */
void cab_echo_report_ready(uint16_t port, int report_fd);

/** Options of the load client. */
typedef struct cab_echo_client_options {
    uint16_t port;
    int connections;
    size_t size;           /* bytes per message */
    double warmup_s;       /* before measuring */
    double duration_s;     /* measured */
    /* Called as the measured window opens (phase 0) and closes (phase 1). */
    void (*mark)(void *arg, int phase);
    void *mark_arg;
    /* Called with every round trip of the window, in nanoseconds (NULL: not recorded). */
    void (*record)(void *arg, uint64_t ns);
    void *record_arg;
} cab_echo_client_options;

/** What the client measured. Latencies are whole round trips; the client
 *  itself leaves the percentiles at 0 and hands every sample to
 *  options.record (the bench records them in an HdrHistogram and fills them in). */
typedef struct cab_echo_client_result {
    uint64_t requests;     /* round trips completed in the window */
    double seconds;        /* the window's length */
    double rps;
    double p50_us;
    double p99_us;
    double p999_us;
    double max_us;
    char error[256];
} cab_echo_client_result;

/**
 * The closed-loop client (single-threaded, epoll): `connections` sockets
 * each send one `size`-byte message, wait for the whole echo, record the
 * round trip (options.record) and send the next. Checks every echoed byte.
 * Returns 0, or -1 with result->error set.
 */
int cab_echo_client(const cab_echo_client_options *opts, cab_echo_client_result *result);

/** Pins process `pid` (0: the caller) to CPU `cpu`; 0 or -errno. */
int cab_pin_to_cpu(int pid, int cpu);

#ifdef __cplusplus
}
#endif
#endif
