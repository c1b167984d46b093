/*
 * timeout.h — asyncio.timeout / asyncio.timeout_at (Lib/asyncio/timeouts.py).
 *
 * A timeout scope is entered and exited around awaits of a kit coroutine:
 *
 *     err = ca_timeout_enter(self->tm);
 *     if (err != NULL) CA_RAISE(err);
 *     CA_AWAIT_CORO_TRY(ca_sleep(10, ca_none()), err);
 *     err = ca_timeout_exit(self->tm, err);     // `async with` ends here
 *     if (err != NULL) CA_RAISE(err);
 *
 * When the deadline passes, the task that entered the scope is cancelled;
 * on exit the scope turns that CancelledError into a TimeoutError, unless
 * another cancel request arrived meanwhile (cancelling() is compared with
 * its value at entry), so nested scopes with the same deadline convert once.
 * Deadlines are loop times in nanoseconds (ca_loop_time's clock).
 */
#ifndef CASYNCIO_TIMEOUT_H
#define CASYNCIO_TIMEOUT_H

#include "combinators.h"

#ifdef __cplusplus
extern "C" {
#endif

/** "No deadline" (Python's None) for timeout_at, reschedule and when. */
#define CA_NO_DEADLINE INT64_MAX

/** Timeout's _State; the comments give the names reprs and errors use. */
typedef enum ca_timeout_state {
    CA_TIMEOUT_CREATED = 0,  /* "created" */
    CA_TIMEOUT_ENTERED = 1,  /* "active" */
    CA_TIMEOUT_EXPIRING = 2, /* "expiring": fired, not exited yet */
    CA_TIMEOUT_EXPIRED = 3,  /* "expired" */
    CA_TIMEOUT_EXITED = 4,   /* "finished" */
} ca_timeout_state;

/** A timeout scope (timeouts.Timeout). */
typedef struct ca_timeout {
    ca_object ob_base;
    uint8_t state;               /* ca_timeout_state */
    int64_t when;                /* deadline (loop ns) or CA_NO_DEADLINE */
    int32_t cancelling;          /* the task's cancelling() at entry */
    ca_handle *timeout_handler;  /* the pending call_at/call_soon (owned) */
    ca_task *task;               /* the task that entered (owned until exit) */
} ca_timeout;

extern const ca_type ca_TimeoutType;

/**
 * timeout(delay): a scope whose deadline is the running loop's time plus
 * `delay` seconds (CA_NO_TIMEOUT: no deadline; <= 0: fires on the next
 * iteration once entered). New reference in *out. Errors: RuntimeError "no
 * running event loop"; MemoryError.
 */
ca_error *ca_timeout_new(double delay, ca_timeout **out);

/**
 * timeout_at(when): a scope with an absolute deadline (`when` in loop
 * nanoseconds; CA_NO_DEADLINE: none). Needs no running loop. New reference
 * in *out. Errors: MemoryError.
 */
ca_error *ca_timeout_at_new(int64_t when, ca_timeout **out);

/** when(): the deadline in loop nanoseconds, or CA_NO_DEADLINE. */
int64_t ca_timeout_when(const ca_timeout *tm);

/**
 * reschedule(when): moves the deadline (CA_NO_DEADLINE disables it); one in
 * the past fires on the next iteration. Errors: RuntimeError "Timeout has
 * not been entered", "Cannot change state of <expiring|expired|finished>
 * Timeout", "no running event loop"; MemoryError.
 */
ca_error *ca_timeout_reschedule(ca_timeout *tm, int64_t when);

/** expired(): the deadline fired inside the scope (expiring or expired). */
bool ca_timeout_expired(const ca_timeout *tm);

/** The state's name: "created", "active", "expiring", "expired", "finished". */
const char *ca_timeout_state_name(const ca_timeout *tm);

/**
 * repr(): "<Timeout [active] when=12.5>" (seconds rounded to 3 places, or
 * when=None) while entered, else "<Timeout [expired]>" etc. Writes into buf
 * (NUL-terminated when size > 0); returns the length that was needed.
 */
size_t ca_timeout_repr(const ca_timeout *tm, char *buf, size_t size);

/**
 * __aenter__: binds the scope to the current task, remembers its
 * cancelling() and arms the deadline. Never suspends. Errors: RuntimeError
 * "Timeout has already been entered", "Timeout should be used inside a
 * task", "no running event loop"; MemoryError.
 */
ca_error *ca_timeout_enter(ca_timeout *tm);

/**
 * __aexit__: disarms the deadline and returns the error leaving the `async
 * with` (a reference the caller owns; NULL: none). Takes `exc`, the error
 * the body raised (NULL: none). If the deadline fired and no other cancel
 * request arrived since entry (uncancel() <= the count at entry): a
 * CancelledError becomes TimeoutError (cause and context: that
 * CancelledError); another error is returned unchanged after a TimeoutError
 * is inserted into its context chain in front of the first CancelledError
 * (for an ExceptionGroup, into each member's too). Otherwise `exc` is
 * returned as is. Exiting a scope that is not entered returns a
 * RuntimeError ("Timeout has not been entered" / "Timeout has already been
 * exited") with `exc` as its context.
 */
ca_error *ca_timeout_exit(ca_timeout *tm, ca_error *exc);

#ifdef __cplusplus
}
#endif
#endif
