/*
 * executor_support.c — the jobs and helpers of ts_executor.h.
 */
#include "ts_executor.h"

#include "casyncio_test_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t ts_thread_self(void) { return (uint64_t)syscall(SYS_gettid); }

ca_error *ts_job_add(void *arg, ca_value *result) {
    ts_job *j = arg;
    __atomic_add_fetch(&j->runs, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&j->worker_tid, ts_thread_self(), __ATOMIC_SEQ_CST);
    *result = ca_int(j->a + j->b);
    return NULL;
}

ca_error *ts_job_fail(void *arg, ca_value *result) {
    ts_job *j = arg;
    __atomic_add_fetch(&j->runs, 1, __ATOMIC_SEQ_CST);
    return ca_error_new(&ca_ValueError, "job failed");
}

ca_error *ts_job_gated(void *arg, ca_value *result) {
    ts_job *j = arg;
    __atomic_add_fetch(&j->started, 1, __ATOMIC_SEQ_CST);
    struct timespec ms = {0, 1000000};
    while (!__atomic_load_n(&j->gate, __ATOMIC_SEQ_CST)) nanosleep(&ms, NULL);
    return ts_job_add(arg, result);
}

void ts_job_release(void *arg) {
    ts_job *j = arg;
    __atomic_add_fetch(&j->releases, 1, __ATOMIC_SEQ_CST);
}

void ts_job_open_gate(ts_job *job) { __atomic_store_n(&job->gate, 1, __ATOMIC_SEQ_CST); }
int ts_job_runs(const ts_job *job) { return __atomic_load_n(&job->runs, __ATOMIC_SEQ_CST); }
int ts_job_started(const ts_job *job) { return __atomic_load_n(&job->started, __ATOMIC_SEQ_CST); }

int ts_addrinfo_describe(ca_future *fut, char *out, size_t size) {
    ca_value v;
    ca_error *err = ca_future_result(fut, &v);
    if (err != NULL) {
        ca_decref(err);
        return -1;
    }
    if (v.kind != CA_VALUE_OBJECT || v.u.obj->ob_type != &ca_AddrInfoListType) return -1;
    const ca_addrinfo_list *l = (const ca_addrinfo_list *)v.u.obj;
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->count && off < size; i++) {
        const ca_addrinfo *e = &l->items[i];
        char host[INET6_ADDRSTRLEN] = "?";
        unsigned port = 0;
        if (e->family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&e->addr;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (e->family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&e->addr;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
        off += (size_t)snprintf(out + off, size - off, "%s%s/%s/%s/%u", i ? "|" : "",
                                e->family == AF_INET ? "inet" : e->family == AF_INET6 ? "inet6" : "other",
                                e->type == SOCK_STREAM ? "stream" : e->type == SOCK_DGRAM ? "dgram" : "raw", host, port);
    }
    return (int)l->count;
}

int ts_block_signal(int signo) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, signo);
    return pthread_sigmask(SIG_BLOCK, &s, NULL);
}

int ts_raise(int signo) { return raise(signo); }

int ts_unblock_signal(int signo) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, signo);
    return pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

bool ts_signal_blocked(int signo) {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    return sigismember(&cur, signo) == 1;
}

void ts_job_count_run(void *arg) {
    ts_job *j = arg;
    if (__atomic_load_n(&j->releases, __ATOMIC_SEQ_CST) > 0) j->runs_after_release++;
    __atomic_add_fetch(&j->runs, 1, __ATOMIC_SEQ_CST);
}

void ts_job_remove_signal_handler(void *arg) {
    ts_job *j = arg;
    bool removed = false;
    ca_decref(ca_loop_remove_signal_handler(j->loop, j->signo, &removed));
    ts_job_count_run(arg);
}

static volatile sig_atomic_t ts_signal_deliveries;
static struct sigaction ts_signal_saved;

static void ts_signal_counter(int signo) {
    (void)signo;
    ts_signal_deliveries++;
}

int ts_signal_count_start(int signo) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ts_signal_counter;
    sigemptyset(&sa.sa_mask);
    ts_signal_deliveries = 0;
    return sigaction(signo, &sa, &ts_signal_saved) < 0 ? -errno : 0;
}

int ts_signal_count_stop(int signo) {
    sigaction(signo, &ts_signal_saved, NULL);
    return ts_signal_deliveries;
}


int ts_fds_open_on(const char *path) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[64], target[4096];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0) continue;
        target[len] = '\0';
        if (strcmp(target, path) == 0) n++;
    }
    closedir(d);
    return n;
}


int ts_thread_in_read(int fd) {
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return -1;
    int found = 0, readable = 0;
    char want[64];
    snprintf(want, sizeof want, "%ld 0x%x ", (long)SYS_read, (unsigned)fd);
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[128], line[512];
        snprintf(path, sizeof path, "/proc/self/task/%s/syscall", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL) continue;
        if (fgets(line, sizeof line, f) != NULL) {
            readable = 1;
            found = strncmp(line, want, strlen(want)) == 0;
        }
        fclose(f);
    }
    closedir(d);
    return found ? 1 : readable ? 0 : -1;
}

ca_error *ts_job_slow(void *arg, ca_value *result) {
    ts_job *j = arg;
    struct timespec ts = {j->b / 1000, (long)(j->b % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ts_job_add(arg, result);
}

typedef struct later_write {
    int fd;
    int delay_ms;
    size_t len;
    uint8_t data[];
} later_write;

static void *later_write_main(void *arg) {
    later_write *w = arg;
    struct timespec ts = {w->delay_ms / 1000, (long)(w->delay_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    ssize_t n = write(w->fd, w->data, w->len);
    (void)n;
    free(w);
    return NULL;
}

int ts_write_later(int fd, const void *data, size_t len, int delay_ms) {
    later_write *w = malloc(sizeof *w + len);
    if (w == NULL) return -ENOMEM;
    w->fd = fd;
    w->delay_ms = delay_ms;
    w->len = len;
    memcpy(w->data, data, len);
    pthread_t t;
    int rc = pthread_create(&t, NULL, later_write_main, w);
    if (rc != 0) {
        free(w);
        return -rc;
    }
    pthread_detach(t);
    return 0;
}

void ts_job_record_var(void *arg) {
    ts_job *j = arg;
    j->seen = ts_var_int(j->var);
    ts_job_count_run(arg);
}
