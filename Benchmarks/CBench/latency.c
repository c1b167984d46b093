/*
 * latency.c — the latency workloads (casyncio_bench.h): how long a
 * call_soon_threadsafe takes to reach its callback (wakeup_latency), and how
 * late call_at timers fire on a loop serving echo connections
 * (timer_lateness). Both write raw samples in nanoseconds to the caller's
 * array; the bench executable turns them into percentiles.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cab_internal.h"

#define WAKEUP_WARMUP 1000
#define WAKEUP_DEFAULT_PACE_NS 200000
/* Self-re-queueing call_soon chains that keep a busy loop iterating. */
#define WAKEUP_BUSY_CHAINS 16

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* MARK: - wakeup_latency */

typedef struct wakeup_state {
    ca_loop *loop;
    uint64_t *latencies;
    uint64_t samples;
    uint64_t pace_ns;
    _Atomic uint64_t send_ns;    /* when the sample in flight was sent */
    _Atomic uint64_t done;       /* samples (warm-up included) whose callback ran */
    _Atomic bool stopping;       /* the busy chains stop re-queueing */
    sem_t ran;                   /* posted by each callback: the sender blocks on it */
    ca_error *send_error;        /* the sender's failure (owned), read after the join */
    ca_error *busy_error;        /* a busy chain's failure (owned), loop thread only */
} wakeup_state;

/* Runs on the loop thread: the sample's latency is the time since its send. */
static void wakeup_cb(void *arg) {
    wakeup_state *st = arg;
    uint64_t now = cab_now_ns();
    uint64_t i = atomic_load_explicit(&st->done, memory_order_relaxed);
    uint64_t sent = atomic_load_explicit(&st->send_ns, memory_order_relaxed);
    if (i >= WAKEUP_WARMUP) st->latencies[i - WAKEUP_WARMUP] = now - sent;
    atomic_store_explicit(&st->done, i + 1, memory_order_release);
    sem_post(&st->ran);
}

static void wakeup_busy_cb(void *arg) {
    wakeup_state *st = arg;
    if (atomic_load_explicit(&st->stopping, memory_order_relaxed) || st->busy_error != NULL) return;
    st->busy_error = ca_loop_call_soon(st->loop, wakeup_busy_cb, st, NULL, NULL, NULL);
}

/* The sending thread: one sample in flight at a time, then a pause, so the
 * samples never queue behind each other. Stops the loop when done. */
static void *wakeup_sender(void *arg) {
    wakeup_state *st = arg;
    uint64_t total = WAKEUP_WARMUP + st->samples;
    for (uint64_t i = 0; i < total; i++) {
        sleep_ns(st->pace_ns);
        atomic_store_explicit(&st->send_ns, cab_now_ns(), memory_order_relaxed);
        /* the core's inbox publishes send_ns to the loop thread with the callback */
        ca_error *err = ca_loop_call_soon_threadsafe(st->loop, wakeup_cb, st, NULL);
        if (err != NULL) {
            st->send_error = err;
            break;
        }
        /* Block (not spin): on 2 vCPUs a spinning sender would take the CPU
         * the woken loop thread needs. */
        while (atomic_load_explicit(&st->done, memory_order_acquire) != i + 1) {
            if (sem_wait(&st->ran) != 0 && errno != EINTR) break;
        }
    }
    atomic_store_explicit(&st->stopping, true, memory_order_relaxed);
    ca_error *err = ca_loop_stop_threadsafe(st->loop);
    if (err != NULL && st->send_error == NULL) st->send_error = err;
    else ca_decref(err);
    return NULL;
}

int cab_run_wakeup_latency(const cab_latency_options *opts, uint64_t *latencies_ns, cab_latency_result *out) {
    memset(out, 0, sizeof *out);
    if (opts->samples == 0) {
        snprintf(out->error, sizeof out->error, "samples must be at least 1");
        return -1;
    }
    wakeup_state st = {
        .latencies = latencies_ns,
        .samples = opts->samples,
        .pace_ns = opts->pace_ns != 0 ? opts->pace_ns : WAKEUP_DEFAULT_PACE_NS,
    };
    cab_result setup;
    if (cab_setup(1, &setup, &st.loop) != 0) {
        snprintf(out->error, sizeof out->error, "%s", setup.error);
        return -1;
    }
    snprintf(out->backend, sizeof out->backend, "%s", setup.backend);
    sem_init(&st.ran, 0, 0);
    int rc = 0;
    ca_error *err = NULL;
    for (int i = 0; opts->busy && err == NULL && i < WAKEUP_BUSY_CHAINS; i++) {
        err = ca_loop_call_soon(st.loop, wakeup_busy_cb, &st, NULL, NULL, NULL);
    }
    if (err != NULL) {
        cab_describe_error(out->error, sizeof out->error, "ca_loop_call_soon", err);
        ca_decref(err);
        cab_teardown(st.loop);
        sem_destroy(&st.ran);
        return -1;
    }
    pthread_t sender;
    int prc = pthread_create(&sender, NULL, wakeup_sender, &st);
    if (prc != 0) {
        snprintf(out->error, sizeof out->error, "pthread_create: %s", strerror(prc));
        cab_teardown(st.loop);
        sem_destroy(&st.ran);
        return -1;
    }
    err = ca_loop_run_forever(st.loop);
    pthread_join(sender, NULL);
    ca_error *first = err != NULL ? err : st.send_error != NULL ? st.send_error : st.busy_error;
    if (first != NULL) {
        cab_describe_error(out->error, sizeof out->error,
                           first == err ? "ca_loop_run_forever" : first == st.send_error ? "sender" : "busy chain",
                           first);
        rc = -1;
    } else if (atomic_load(&st.done) != WAKEUP_WARMUP + st.samples) {
        snprintf(out->error, sizeof out->error, "%llu of %llu callbacks ran",
                 (unsigned long long)atomic_load(&st.done), (unsigned long long)(WAKEUP_WARMUP + st.samples));
        rc = -1;
    } else {
        out->count = st.samples;
    }
    ca_decref(err);
    ca_decref(st.send_error);
    ca_decref(st.busy_error);
    cab_teardown(st.loop);
    sem_destroy(&st.ran);
    return rc;
}

/* MARK: - timer_lateness */

#define LATENESS_CHAINS 8
#define LATENESS_MAX_DELAY_US 2000
#define LATENESS_DEFAULT_CONNECTIONS 50
#define LATENESS_DEFAULT_WARMUP_S 0.5
#define LATENESS_DEFAULT_DURATION_S 3.0

typedef struct lateness_state lateness_state;

/* One chain of timers: each firing records its lateness and arms the next. */
typedef struct lateness_chain {
    lateness_state *st;
    int64_t deadline;     /* CLOCK_MONOTONIC ns of the armed timer */
    ca_handle *handle;    /* the armed timer (owned) */
} lateness_chain;

struct lateness_state {
    ca_loop *loop;
    uint64_t *latencies;
    uint64_t capacity;
    uint64_t count;
    uint64_t x;                      /* the LCG */
    _Atomic bool recording;          /* the client's measured window is open */
    bool stopped;                    /* chains stop re-arming */
    ca_error *arm_error;             /* a chain's failure (owned) */
    lateness_chain chains[LATENESS_CHAINS];
    /* the client thread */
    cab_echo_client_options client;
    cab_echo_client_result client_result;
    int client_rc;
    ca_error *stop_error;
};

/* The workloads.md LCG, scaled to [0, 2 ms) in whole microseconds. */
static int64_t lateness_next_delay_ns(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (int64_t)((*x >> 33) % (LATENESS_MAX_DELAY_US * 10)) * 100;
}

static void lateness_fired(void *arg);

static void lateness_arm(lateness_chain *c) {
    lateness_state *st = c->st;
    CA_CLEAR(c->handle);
    if (st->stopped || st->arm_error != NULL) return;
    c->deadline = (int64_t)cab_now_ns() + lateness_next_delay_ns(&st->x);
    st->arm_error = ca_loop_call_at(st->loop, c->deadline, lateness_fired, c, NULL, NULL, &c->handle);
}

static void lateness_fired(void *arg) {
    lateness_chain *c = arg;
    lateness_state *st = c->st;
    int64_t now = (int64_t)cab_now_ns();
    if (atomic_load_explicit(&st->recording, memory_order_relaxed) && st->count < st->capacity) {
        st->latencies[st->count++] = now > c->deadline ? (uint64_t)(now - c->deadline) : 0;
    }
    lateness_arm(c);
}

static void lateness_mark(void *arg, int phase) {
    atomic_store_explicit(&((lateness_state *)arg)->recording, phase == 0, memory_order_relaxed);
}

/* The client thread: drives the echo server for warm-up + window, then stops the loop. */
static void *lateness_client(void *arg) {
    lateness_state *st = arg;
    st->client_rc = cab_echo_client(&st->client, &st->client_result);
    atomic_store_explicit(&st->recording, false, memory_order_relaxed);
    st->stop_error = ca_loop_stop_threadsafe(st->loop);
    return NULL;
}

static void lateness_stop(void *arg) { ca_loop_stop((ca_loop *)arg); }

int cab_run_timer_lateness(const cab_latency_options *opts, uint64_t *latencies_ns, cab_latency_result *out) {
    memset(out, 0, sizeof *out);
    if (opts->samples == 0) {
        snprintf(out->error, sizeof out->error, "samples must be at least 1");
        return -1;
    }
    lateness_state state = {0};
    lateness_state *st = &state;
    st->latencies = latencies_ns;
    st->capacity = opts->samples;
    st->x = 1;
    cab_result setup;
    if (cab_setup(1, &setup, &st->loop) != 0) {
        snprintf(out->error, sizeof out->error, "%s", setup.error);
        return -1;
    }
    snprintf(out->backend, sizeof out->backend, "%s", setup.backend);
    int rc = -1;
    ca_server *server = NULL;
    ca_server_options sopts = {.backlog = 1024};
    ca_error *err = ca_loop_create_server(st->loop, cab_echo_protocol_factory, NULL, "127.0.0.1", 0, &sopts, &server);
    if (err != NULL) {
        cab_describe_error(out->error, sizeof out->error, "create_server", err);
        ca_decref(err);
        cab_teardown(st->loop);
        return -1;
    }
    for (int i = 0; i < LATENESS_CHAINS; i++) {
        st->chains[i].st = st;
        lateness_arm(&st->chains[i]);
    }
    st->client = (cab_echo_client_options){
        .port = ca_server_get_port(server),
        .connections = opts->connections > 0 ? opts->connections : LATENESS_DEFAULT_CONNECTIONS,
        .size = 64,
        .warmup_s = opts->warmup_s > 0 ? opts->warmup_s : LATENESS_DEFAULT_WARMUP_S,
        .duration_s = opts->duration_s > 0 ? opts->duration_s : LATENESS_DEFAULT_DURATION_S,
        .mark = lateness_mark,
        .mark_arg = st,
    };
    pthread_t client;
    int prc = st->arm_error == NULL ? pthread_create(&client, NULL, lateness_client, st) : -1;
    if (prc > 0) snprintf(out->error, sizeof out->error, "pthread_create: %s", strerror(prc));
    if (prc == 0) {
        err = ca_loop_run_forever(st->loop);
        pthread_join(client, NULL);
    }
    st->stopped = true;
    for (int i = 0; i < LATENESS_CHAINS; i++) {
        if (st->chains[i].handle != NULL) ca_handle_cancel(st->chains[i].handle);
        CA_CLEAR(st->chains[i].handle);
    }
    /* Let the server see the client's connections close before the loop does. */
    ca_server_close(server);
    if (err == NULL) err = ca_loop_call_later(st->loop, 50 * 1000000LL, lateness_stop, st->loop, NULL, NULL, NULL);
    if (err == NULL) err = ca_loop_run_forever(st->loop);
    ca_error *first = err != NULL ? err : st->arm_error != NULL ? st->arm_error : st->stop_error;
    if (first != NULL) {
        cab_describe_error(out->error, sizeof out->error,
                           first == err ? "the loop" : first == st->arm_error ? "call_at" : "stop_threadsafe", first);
    } else if (prc != 0) {
        /* out->error already says why */
    } else if (st->client_rc != 0) {
        snprintf(out->error, sizeof out->error, "echo client: %s", st->client_result.error);
    } else if (st->count == 0) {
        snprintf(out->error, sizeof out->error, "no timer fired in the measured window");
    } else {
        out->count = st->count;
        out->echo_requests = st->client_result.requests;
        out->echo_rps = st->client_result.rps;
        rc = 0;
    }
    ca_decref(err);
    ca_decref(st->arm_error);
    ca_decref(st->stop_error);
    ca_decref(server);
    cab_teardown(st->loop);
    return rc;
}
