/*
 * signal.c — add_signal_handler / remove_signal_handler
 * (unix_events._UnixSelectorEventLoop) on a signalfd watched as a reader.
 *
 * Where we differ on purpose: asyncio installs a C handler that writes the
 * signal number to a wake-up fd (signal.set_wakeup_fd); a signalfd gives
 * the same without any code running in signal context.
 */
#include "signal_internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* A handler's callback and argument, shared by the entry and every call
 * of it still in the ready queue: removing or replacing the handler while
 * a call is pending must not free the argument under it (asyncio's Handle
 * keeps its callback and args alive the same way). */
typedef struct sig_handler {
    ca_object ob_base;
    ca_callback_fn fn;
    void *arg;
    ca_release_fn release;      /* runs with the last reference */
} sig_handler;

static void sig_handler_dealloc(ca_object *op) {
    sig_handler *h = (sig_handler *)op;
    if (h->release != NULL) h->release(h->arg);
    ca_free(h);
}

static const ca_type sig_handler_type = {"signal_handler", sizeof(sig_handler), sig_handler_dealloc, NULL};

static void sig_handler_run(void *arg) {
    sig_handler *h = arg;
    h->fn(h->arg);
}


typedef struct sig_entry {
    sig_handler *handler;   /* strong, NULL when no handler is set */
    ca_context *ctx;        /* strong, NULL: an empty context */
    bool we_blocked;        /* add_signal_handler blocked it in its thread */
} sig_entry;

struct ca_signals {
    int sfd;                /* -1 until the first handler */
    sigset_t mask;          /* the signals with a handler */
    sig_entry entries[NSIG];
};

static ca_error *sig_check(int sig) {
    if (sig < 1 || sig >= NSIG) return ca_error_format(&ca_ValueError, "sig %d out of range(1, %d)", sig, NSIG);
    return NULL;
}

static void sig_entry_clear(sig_entry *e) {
    sig_handler *h = e->handler;
    ca_context *ctx = e->ctx;
    *e = (sig_entry){0};
    ca_decref(h);
    ca_decref(ctx);
}

/* The signalfd is readable: schedule the handler of every signal read. */
static void sig_read_ready(void *arg) {
    ca_loop *loop = arg;
    ca_signals *s = loop->io != NULL ? loop->io->signals : NULL;
    if (s == NULL || s->sfd < 0) return;
    struct signalfd_siginfo info[16];
    for (;;) {
        ssize_t n = read(s->sfd, info, sizeof info);
        if (n <= 0) break;
        for (size_t i = 0; i < (size_t)n / sizeof info[0]; i++) {
            int sig = (int)info[i].ssi_signo;
            if (sig <= 0 || sig >= NSIG || s->entries[sig].handler == NULL) continue;
            sig_entry *e = &s->entries[sig];
            ca_error *err = ca_loop_call_soon(loop, sig_handler_run, ca_incref(e->handler), ca_release_object,
                                              e->ctx, NULL);
            if (err != NULL) {
                ca_loop_report_callback_error(loop, NULL, err);
                ca_decref(err);
            }
        }
        if ((size_t)n < sizeof info) break;
    }
}

/** Unblocks `sig` in the calling thread, first discarding what arrived
 *  while the handler was set but was never read from the signalfd:
 *  asyncio drops a signal whose handler is gone, whereas unblocking it
 *  still pending would run its default action (for most signals, killing
 *  the process). */
static void sig_unblock_discarding_pending(int sig) {
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    const struct timespec zero = {0, 0};
    for (;;) {
        int got = sigtimedwait(&one, NULL, &zero);
        if (got == sig || (got < 0 && errno == EINTR)) continue; /* real-time signals queue several */
        break;
    }
    pthread_sigmask(SIG_UNBLOCK, &one, NULL);
}

static ca_signals *sig_get(ca_loop *loop) {
    ca_io_loop *io = ca_io_loop_get(loop);
    if (io == NULL) return NULL;
    if (io->signals == NULL) {
        ca_signals *s = ca_calloc(1, sizeof *s);
        if (s == NULL) return NULL;
        s->sfd = -1;
        sigemptyset(&s->mask);
        io->signals = s;
    }
    return io->signals;
}

/** Points the signalfd at the current mask, creating and watching it the
 *  first time. */
static ca_error *sig_update_fd(ca_loop *loop, ca_signals *s) {
    int fd = signalfd(s->sfd, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return ca_error_from_io(errno, "signalfd");
    if (s->sfd < 0) {
        s->sfd = fd;
        ca_error *err = ca_loop_add_reader(loop, fd, sig_read_ready, loop, NULL);
        if (err != NULL) {
            close(fd);
            s->sfd = -1;
            return err;
        }
    }
    return NULL;
}

ca_error *ca_loop_add_signal_handler(ca_loop *loop, int sig, ca_callback_fn fn, void *arg, ca_release_fn release) {
    ca_error *err = sig_check(sig);
    ca_signals *s = NULL;
    if (err == NULL && fn == NULL) err = ca_error_new(&ca_TypeError, "fn must not be NULL");
    if (err == NULL && (sig == SIGKILL || sig == SIGSTOP)) err = ca_error_format(&ca_RuntimeError, "sig %d cannot be caught", sig);
    if (err == NULL && loop->closed) err = ca_error_new(&ca_RuntimeError, "Event loop is closed");
    if (err == NULL && (s = sig_get(loop)) == NULL) err = ca_error_new(&ca_MemoryError, NULL);
    if (err != NULL) {
        if (release != NULL) release(arg);
        return err;
    }
    sig_handler *h = ca_calloc(1, sizeof *h);
    if (h == NULL) {
        if (release != NULL) release(arg);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    ca_object_init(h, &sig_handler_type);
    h->fn = fn;
    h->arg = arg;
    h->release = release;
    sig_entry *e = &s->entries[sig];
    bool had = e->handler != NULL;
    bool we_blocked = e->we_blocked;
    if (!had) {
        sigset_t one, old;
        sigemptyset(&one);
        sigaddset(&one, sig);
        pthread_sigmask(SIG_BLOCK, &one, &old);
        we_blocked = !sigismember(&old, sig);
        sigaddset(&s->mask, sig);
        err = sig_update_fd(loop, s);
        if (err != NULL) {
            sigdelset(&s->mask, sig);
            if (we_blocked) pthread_sigmask(SIG_UNBLOCK, &one, NULL);
            ca_decref(h); /* releases arg */
            return err;
        }
    }
    sig_entry_clear(e);
    e->handler = h;
    e->ctx = ca_context_copy_current_or_null();
    e->we_blocked = we_blocked;
    return NULL;
}

ca_error *ca_loop_remove_signal_handler(ca_loop *loop, int sig, bool *removed) {
    *removed = false;
    ca_error *err = sig_check(sig);
    if (err != NULL) return err;
    ca_signals *s = loop->io != NULL ? loop->io->signals : NULL;
    if (s == NULL || s->entries[sig].handler == NULL) return NULL;
    bool we_blocked = s->entries[sig].we_blocked;
    sig_entry_clear(&s->entries[sig]);
    sigdelset(&s->mask, sig);
    if (s->sfd >= 0) (void)signalfd(s->sfd, &s->mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (we_blocked) sig_unblock_discarding_pending(sig);
    if (sigisemptyset(&s->mask) && s->sfd >= 0) {
        ca_loop_remove_reader(loop, s->sfd);
        ca_decref(ca_loop_sock_close(loop, s->sfd));
        s->sfd = -1;
    }
    *removed = true;
    return NULL;
}

void ca_signals_loop_closed(ca_loop *loop, ca_signals *s) {
    if (s == NULL) return;
    for (int sig = 1; sig < NSIG; sig++) {
        if (s->entries[sig].handler == NULL) continue;
        if (s->entries[sig].we_blocked) sig_unblock_discarding_pending(sig);
        sig_entry_clear(&s->entries[sig]);
    }
    if (s->sfd >= 0) close(s->sfd);
    ca_free(s);
}
