/*
 * probes.c — layout probes for the offsets table's bitfields, and a task
 * orphaned by its thread, for the registry tests.
 */
#include "inspect_fixture.h"

#include <casyncio/debug.h>

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static if_bitfield changed_byte(const void *a, const void *b, size_t size) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < size; i++)
        if (x[i] != y[i]) return (if_bitfield){i, (uint8_t)(x[i] ^ y[i])};
    return (if_bitfield){SIZE_MAX, 0};
}

if_bitfield if_probe_future_log_tb(void) {
    ca_future zero, one;
    memset(&zero, 0, sizeof zero);
    memset(&one, 0, sizeof one);
    one.fut_log_tb = 1;
    return changed_byte(&one, &zero, sizeof zero);
}

if_bitfield if_probe_future_blocking(void) {
    ca_future zero, one;
    memset(&zero, 0, sizeof zero);
    memset(&one, 0, sizeof one);
    one.fut_blocking = 1;
    return changed_byte(&one, &zero, sizeof zero);
}

if_bitfield if_probe_task_must_cancel(void) {
    ca_task zero, one;
    memset(&zero, 0, sizeof zero);
    memset(&one, 0, sizeof one);
    one.task_must_cancel = 1;
    return changed_byte(&one, &zero, sizeof zero);
}

/* MARK: - Orphans */

typedef struct idle_frame {
    ca_cframe cf;
} idle_frame;

CA_CORO_TYPE(idle_type, idle_frame, orphaned_body, NULL);
CA_CORO_BODY(orphaned_body, idle_frame) {
    CA_BEGIN;
    CA_END;
}

static void *orphan_thread(void *arg) {
    if_orphan *o = arg;
    o->thread_id = (uint64_t)syscall(SYS_gettid);
    ca_error *err = ca_loop_new(NULL, &o->loop);
    if (err == NULL) {
        ca_task_options opts = {.name = "orphan"};
        err = ca_task_new(o->loop, ca_cframe_new(&idle_type, sizeof(idle_frame)), &opts, &o->task);
    }
    ca_decref(err);
    return NULL;
}

int if_make_orphan(if_orphan *out) {
    memset(out, 0, sizeof *out);
    pthread_t t;
    if (pthread_create(&t, NULL, orphan_thread, out) != 0) return -1;
    pthread_join(t, NULL);
    return out->task != NULL ? 0 : -1;
}

static void silent_handler(ca_loop *loop, const ca_exception_context *context, void *arg) {}

int if_registry_threads_after_fork(void) {
    (void)ca_get_running_loop(); /* this thread is registered */
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) _exit((int)ca_debug_thread_count());
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

int if_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

uint64_t if_gettid(void) { return (uint64_t)syscall(SYS_gettid); }

void if_silence_loop(ca_loop *loop) { ca_loop_set_exception_handler(loop, silent_handler, NULL); }

void if_release_orphan(if_orphan *o) {
    if (o->loop != NULL) {
        if_silence_loop(o->loop);
        ca_decref(ca_loop_close(o->loop));
    }
    CA_CLEAR(o->task);
    CA_CLEAR(o->loop);
}
