/*
 * future.c — asyncio.Future, mirroring FutureObj in Modules/_asynciomodule.c
 * (behaviour per Lib/asyncio/futures.py).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void future_dealloc(ca_object *op);
const ca_type ca_FutureType = {"Future", sizeof(ca_future), future_dealloc, NULL};

bool ca_future_check(const void *op) {
    if (op == NULL) return false;
    /* exact types first, as CPython's Future_CheckExact / Task_CheckExact */
    const ca_type *t = ((const ca_object *)op)->ob_type;
    if (CA_LIKELY(t == &ca_FutureType || t == &ca_TaskType)) return true;
    return ca_object_is_instance(op, &ca_FutureType);
}

static ca_error *not_initialized(void) {
    return ca_error_new(&ca_InvalidStateError, "Future object is not initialized.");
}

ca_future *ca_future_new(ca_loop *loop) {
    if (loop == NULL) return NULL;
    return ca_future_new_inline(loop);
}

ca_loop *ca_future_get_loop(const ca_future *fut) { return fut->fut_loop; }
bool ca_future_done(const ca_future *fut) { return fut->fut_loop != NULL && fut->fut_state != CA_FUTURE_PENDING; }
bool ca_future_cancelled(const ca_future *fut) { return fut->fut_loop != NULL && fut->fut_state == CA_FUTURE_CANCELLED; }

const char *ca_future_state_name(const ca_future *fut) {
    switch (fut->fut_state) {
    case CA_FUTURE_CANCELLED: return "CANCELLED";
    case CA_FUTURE_FINISHED: return "FINISHED";
    default: return "PENDING";
    }
}

/* MARK: - Callback storage */

static size_t list_bytes(size_t cap) { return sizeof(ca_callback_list) + cap * sizeof(ca_callback_entry); }

static void entry_release(ca_callback *cb, ca_context *ctx) {
    if (cb->arg_release != NULL) cb->arg_release(cb->arg);
    ca_decref(ctx);
}

static void list_free(ca_callback_list *l) { ca_small_free(l, list_bytes(l->cap)); }

/* future_schedule_callbacks: every registered callback goes through
 * call_soon, callback0 first, then the list in order. Slots are emptied
 * before each call_soon so nothing it triggers sees a half-moved entry. */
ca_error *ca_future_schedule_callbacks_slow(ca_future *fut) {
    if (fut->fut_is_task) ca_unregister_task_inline((ca_task *)fut);
    ca_error *err = NULL;
    if (fut->fut_callback0.fn != NULL) {
        ca_callback cb = fut->fut_callback0;
        ca_context *ctx = fut->fut_context0;
        fut->fut_callback0 = (ca_callback){0};
        fut->fut_context0 = NULL;
        err = ca_loop_call_soon_done(fut->fut_loop, fut, cb.fn, cb.arg, cb.arg_release, ctx);
    }
    ca_callback_list *l = fut->fut_callbacks;
    fut->fut_callbacks = NULL;
    if (l == NULL) return err;
    for (size_t i = 0; i < l->len; i++) {
        ca_callback_entry *e = &l->items[i];
        if (err != NULL) {
            /* As futures.py: once call_soon fails the rest are dropped. */
            entry_release(&e->cb, e->ctx);
            continue;
        }
        err = ca_loop_call_soon_done(fut->fut_loop, fut, e->cb.fn, e->cb.arg, e->cb.arg_release, e->ctx);
    }
    list_free(l);
    return err;
}

ca_error *ca_future_add_done_callback(ca_future *fut, ca_done_fn fn, void *arg, ca_release_fn arg_release,
                                      ca_context *ctx) {
    if (fut->fut_loop == NULL) {
        if (arg_release) arg_release(arg);
        return not_initialized();
    }
    ca_context *c = ctx != NULL ? ca_incref(ctx) : ca_context_copy_current_or_null();
    if (fut->fut_state != CA_FUTURE_PENDING)
        return ca_loop_call_soon_done(fut->fut_loop, fut, fn, arg, arg_release, c);
    if (fut->fut_callbacks == NULL && fut->fut_callback0.fn == NULL) {
        fut->fut_callback0 = (ca_callback){fn, arg, arg_release};
        fut->fut_context0 = c;
        return NULL;
    }
    ca_callback_list *l = fut->fut_callbacks;
    if (l == NULL || l->len == l->cap) {
        size_t cap = l ? l->cap * 2 : 4;
        ca_callback_list *n = ca_small_alloc(list_bytes(cap));
        if (n == NULL) {
            entry_release(&(ca_callback){fn, arg, arg_release}, c);
            return ca_error_new(&ca_MemoryError, NULL);
        }
        n->cap = cap;
        n->len = 0;
        if (l != NULL) {
            memcpy(n->items, l->items, l->len * sizeof(ca_callback_entry));
            n->len = l->len;
            list_free(l);
        }
        fut->fut_callbacks = l = n;
    }
    l->items[l->len++] = (ca_callback_entry){{fn, arg, arg_release}, c};
    return NULL;
}

size_t ca_future_remove_done_callback(ca_future *fut, ca_done_fn fn, void *arg) {
    size_t removed = 0;
    if (fut->fut_callback0.fn == fn && fut->fut_callback0.arg == arg && fn != NULL) {
        ca_callback cb = fut->fut_callback0;
        ca_context *ctx = fut->fut_context0;
        fut->fut_callback0 = (ca_callback){0};
        fut->fut_context0 = NULL;
        entry_release(&cb, ctx);
        removed++;
    }
    ca_callback_list *l = fut->fut_callbacks;
    if (l == NULL) return removed;
    /* Stable filter; the dropped entries are released only once the list
     * is consistent again, because a release may re-enter this future. */
    ca_callback_entry stack_dropped[16];
    ca_callback_entry *dropped = stack_dropped;
    size_t ndropped = 0, j = 0;
    for (size_t i = 0; i < l->len; i++) {
        if (l->items[i].cb.fn == fn && l->items[i].cb.arg == arg) ndropped++;
    }
    if (ndropped == 0) return removed;
    if (ndropped > 16) {
        dropped = ca_malloc(ndropped * sizeof *dropped);
        if (dropped == NULL) return removed; /* nothing removed from the list */
    }
    ndropped = 0;
    for (size_t i = 0; i < l->len; i++) {
        ca_callback_entry e = l->items[i];
        if (e.cb.fn == fn && e.cb.arg == arg) dropped[ndropped++] = e;
        else l->items[j++] = e;
    }
    l->len = j;
    if (j == 0) {
        fut->fut_callbacks = NULL;
        list_free(l);
    }
    for (size_t i = 0; i < ndropped; i++) entry_release(&dropped[i].cb, dropped[i].ctx);
    if (dropped != stack_dropped) ca_free(dropped);
    return removed + ndropped;
}

size_t ca_future_get_callbacks(const ca_future *fut, ca_callback *out, size_t cap) {
    size_t n = 0;
    if (fut->fut_callback0.fn != NULL) {
        if (n < cap) out[n] = fut->fut_callback0;
        n++;
    }
    if (fut->fut_callbacks != NULL) {
        for (size_t i = 0; i < fut->fut_callbacks->len; i++) {
            if (n < cap) out[n] = fut->fut_callbacks->items[i].cb;
            n++;
        }
    }
    return n;
}

/* MARK: - Result, exception, cancel */

ca_error *ca_future_make_cancelled_error(ca_future *fut) {
    if (fut->fut_cancelled_exc != NULL) {
        ca_error *exc = fut->fut_cancelled_exc;
        fut->fut_cancelled_exc = NULL;
        return exc;
    }
    return ca_error_new(&ca_CancelledError, fut->fut_cancel_msg);
}

ca_error *ca_future_result(ca_future *fut, ca_value *out) {
    *out = ca_none();
    if (fut->fut_loop == NULL) return not_initialized();
    if (fut->fut_state == CA_FUTURE_CANCELLED) return ca_future_make_cancelled_error(fut);
    if (fut->fut_state != CA_FUTURE_FINISHED) return ca_error_new(&ca_InvalidStateError, "Result is not set.");
    fut->fut_log_tb = 0;
    if (fut->fut_exception != NULL) return ca_incref(fut->fut_exception);
    *out = fut->fut_result;
    return NULL;
}

ca_error *ca_future_exception(ca_future *fut, ca_error **out) {
    *out = NULL;
    if (fut->fut_loop == NULL) return not_initialized();
    if (fut->fut_state == CA_FUTURE_CANCELLED) return ca_future_make_cancelled_error(fut);
    if (fut->fut_state != CA_FUTURE_FINISHED) return ca_error_new(&ca_InvalidStateError, "Exception is not set.");
    fut->fut_log_tb = 0;
    *out = ca_incref(fut->fut_exception);
    return NULL;
}

static ca_error *invalid_state(void) {
    return ca_error_new(&ca_InvalidStateError, "invalid state");
}

ca_error *ca_future_set_result_impl(ca_future *fut, ca_value value) {
    if (fut->fut_loop == NULL) {
        ca_value_clear(&value);
        return not_initialized();
    }
    if (fut->fut_state != CA_FUTURE_PENDING) {
        ca_value_clear(&value);
        return invalid_state();
    }
    fut->fut_result = value;
    fut->fut_state = CA_FUTURE_FINISHED;
    return ca_future_schedule_callbacks(fut);
}

ca_error *ca_future_set_exception_impl(ca_future *fut, ca_error *exc) {
    if (fut->fut_loop == NULL) return not_initialized();
    if (exc == NULL) return ca_error_new(&ca_TypeError, "invalid exception object");
    if (fut->fut_state != CA_FUTURE_PENDING) return invalid_state();
    ca_error *stored;
    if (ca_error_matches(exc, &ca_StopIteration)) {
        /* gh-112182: a StopIteration would end the awaiting generator. */
        stored = ca_error_new(&ca_RuntimeError,
                              "StopIteration interacts badly with generators and cannot be raised into a Future");
        ca_error_set_cause(stored, exc);
        ca_error_set_context(stored, exc);
    } else {
        stored = ca_incref(exc);
    }
    fut->fut_exception = stored;
    fut->fut_state = CA_FUTURE_FINISHED;
    ca_error *err = ca_future_schedule_callbacks(fut);
    fut->fut_log_tb = 1;
    return err;
}

ca_error *ca_future_set_result(ca_future *fut, ca_value value) {
    if (fut->fut_is_task) {
        ca_value_clear(&value);
        return ca_error_new(&ca_RuntimeError, "Task does not support set_result operation");
    }
    return ca_future_set_result_impl(fut, value);
}

ca_error *ca_future_set_exception(ca_future *fut, ca_error *exc) {
    if (fut->fut_is_task) return ca_error_new(&ca_RuntimeError, "Task does not support set_exception operation");
    return ca_future_set_exception_impl(fut, exc);
}

static void set_cancel_msg(ca_future *fut, const char *msg) {
    char *copy = msg ? ca_strdup(msg) : NULL;
    ca_free(fut->fut_cancel_msg);
    fut->fut_cancel_msg = copy;
}

bool ca_future_cancel_impl(ca_future *fut, const char *msg) {
    fut->fut_log_tb = 0;
    if (fut->fut_loop == NULL || fut->fut_state != CA_FUTURE_PENDING) return false;
    fut->fut_state = CA_FUTURE_CANCELLED;
    set_cancel_msg(fut, msg);
    ca_error *err = ca_future_schedule_callbacks(fut);
    if (err != NULL) {
        ca_loop_report_callback_error(fut->fut_loop, NULL, err);
        ca_decref(err);
    }
    return true;
}

bool ca_future_cancel(ca_future *fut, const char *msg) {
    if (fut->fut_is_task) return ca_task_cancel((ca_task *)fut, msg);
    if (CA_UNLIKELY(fut->ob_base.ob_type != &ca_FutureType)) {
        /* a subclass overriding cancel() (tasks._GatheringFuture) */
        const ca_future_type *ft = (const ca_future_type *)fut->ob_base.ob_type;
        if (ft->ft_cancel != NULL) return ft->ft_cancel(fut, msg);
    }
    return ca_future_cancel_impl(fut, msg);
}


const char *ca_future_cancel_message(const ca_future *fut) { return fut->fut_cancel_msg; }
void ca_future_set_cancel_message(ca_future *fut, const char *msg) { set_cancel_msg(fut, msg); }

ca_error *ca_future_set_log_traceback(ca_future *fut, bool value) {
    if (value) return ca_error_new(&ca_ValueError, "_log_traceback can only be set to False");
    fut->fut_log_tb = 0;
    return NULL;
}

bool ca_future_get_blocking(const ca_future *fut) { return fut->fut_blocking; }
void ca_future_set_blocking(ca_future *fut, bool value) { fut->fut_blocking = value; }

/* MARK: - awaited_by (future_add_to_awaited_by / future_discard_from_awaited_by) */

static size_t ptr_hash(const void *p) {
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= 0xed5ad4bbu;
    x ^= x >> 11;
    return (size_t)x;
}

static bool ptrset_insert_raw(ca_ptrset *s, void *p) {
    size_t i = ptr_hash(p) & s->mask;
    size_t dummy = SIZE_MAX;
    while (s->table[i] != NULL) {
        if (s->table[i] == p) return false;
        if (s->table[i] == CA_PTRSET_DUMMY && dummy == SIZE_MAX) dummy = i;
        i = (i + 1) & s->mask;
    }
    if (dummy != SIZE_MAX) i = dummy;
    else s->fill++;
    s->table[i] = p;
    s->used++;
    return true;
}

static ca_error *ptrset_add(ca_ptrset *s, void *p) {
    if ((s->fill + 1) * 3 >= (s->mask + 1) * 2) {
        size_t cap = (s->mask + 1) * 2;
        while (s->used * 3 >= cap) cap *= 2;
        void **old = s->table;
        size_t oldcap = s->mask + 1;
        void **nt = ca_calloc(cap, sizeof(void *));
        if (nt == NULL) return ca_error_new(&ca_MemoryError, NULL);
        s->table = nt;
        s->mask = cap - 1;
        s->used = s->fill = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i] != NULL && old[i] != CA_PTRSET_DUMMY) ptrset_insert_raw(s, old[i]);
        ca_free(old);
    }
    if (ptrset_insert_raw(s, p)) ca_incref(p);
    return NULL;
}

static void ptrset_discard(ca_ptrset *s, void *p) {
    size_t i = ptr_hash(p) & s->mask;
    while (s->table[i] != NULL) {
        if (s->table[i] == p) {
            s->table[i] = CA_PTRSET_DUMMY;
            s->used--;
            ca_decref(p);
            return;
        }
        i = (i + 1) & s->mask;
    }
}

static void ptrset_free(ca_ptrset *s) {
    for (size_t i = 0; i <= s->mask; i++)
        if (s->table[i] != NULL && s->table[i] != CA_PTRSET_DUMMY) ca_decref(s->table[i]);
    ca_free(s->table);
    ca_free(s);
}

ca_error *ca_future_add_to_awaited_by(ca_future *fut, ca_future *waiter) {
    if (!ca_future_check_fast(fut) || !ca_future_check_fast(waiter)) return NULL;
    if (fut->fut_awaited_by == NULL) {
        fut->fut_awaited_by = ca_incref(waiter);
        return NULL;
    }
    if (fut->fut_awaited_by_is_set) return ptrset_add(fut->fut_awaited_by, waiter);
    ca_ptrset *s = ca_malloc(sizeof *s);
    void **table = ca_calloc(8, sizeof(void *));
    if (s == NULL || table == NULL) {
        ca_free(s);
        ca_free(table);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    *s = (ca_ptrset){0, 0, 7, table};
    void *first = fut->fut_awaited_by;
    ptrset_insert_raw(s, first); /* keeps the reference the slot held */
    fut->fut_awaited_by = s;
    fut->fut_awaited_by_is_set = 1;
    return ptrset_add(s, waiter);
}

void ca_future_discard_from_awaited_by(ca_future *fut, ca_future *waiter) {
    if (fut->fut_awaited_by == NULL) return;
    if (!fut->fut_awaited_by_is_set) {
        if (fut->fut_awaited_by == waiter) CA_CLEAR(fut->fut_awaited_by);
        return;
    }
    ptrset_discard(fut->fut_awaited_by, waiter);
}

size_t ca_future_get_awaited_by(const ca_future *fut, ca_future **out, size_t cap) {
    if (fut->fut_awaited_by == NULL) return 0;
    if (!fut->fut_awaited_by_is_set) {
        if (cap > 0) out[0] = fut->fut_awaited_by;
        return 1;
    }
    const ca_ptrset *s = fut->fut_awaited_by;
    size_t n = 0;
    for (size_t i = 0; i <= s->mask; i++) {
        void *p = s->table[i];
        if (p == NULL || p == CA_PTRSET_DUMMY) continue;
        if (n < cap) out[n] = p;
        n++;
    }
    return n;
}

/* MARK: - repr */

static void format_callbacks(ca_strbuf *sb, const ca_future *fut) {
    ca_callback cbs[2];
    size_t n = ca_future_get_callbacks(fut, NULL, 0);
    if (n == 0) return;
    ca_strbuf_printf(sb, " cb=[");
    ca_future_get_callbacks(fut, cbs, 1);
    ca_fn_repr(sb, (const void *)cbs[0].fn);
    if (n == 2) {
        const ca_callback *second = fut->fut_callback0.fn ? &fut->fut_callbacks->items[0].cb
                                                          : &fut->fut_callbacks->items[1].cb;
        ca_strbuf_printf(sb, ", ");
        ca_fn_repr(sb, (const void *)second->fn);
    } else if (n > 2) {
        const ca_callback *last = &fut->fut_callbacks->items[fut->fut_callbacks->len - 1].cb;
        ca_strbuf_printf(sb, ", <%zu more>, ", n - 2);
        ca_fn_repr(sb, (const void *)last->fn);
    }
    ca_strbuf_printf(sb, "]");
}

/* The state part shared with Task's repr (futures._future_repr_info). */
void ca_future_repr_info(ca_strbuf *sb, const ca_future *fut, bool with_state) {
    if (with_state)
        ca_strbuf_printf(sb, "%s", fut->fut_state == CA_FUTURE_PENDING ? "pending"
                                  : fut->fut_state == CA_FUTURE_CANCELLED ? "cancelled" : "finished");
    if (fut->fut_state == CA_FUTURE_FINISHED) {
        if (fut->fut_exception != NULL) {
            ca_strbuf_printf(sb, " exception=");
            ca_error_repr(sb, fut->fut_exception);
        } else {
            ca_strbuf_printf(sb, " result=");
            ca_value_repr(sb, &fut->fut_result);
        }
    }
    format_callbacks(sb, fut);
    if (fut->fut_source_tb != NULL) ca_strbuf_printf(sb, " created at %s", fut->fut_source_tb);
}

size_t ca_future_repr(const ca_future *fut, char *buf, size_t size) {
    if (fut->fut_is_task) return ca_task_repr((ca_task *)fut, buf, size);
    ca_strbuf sb = {buf, size, 0};
    if (size > 0) buf[0] = '\0';
    ca_strbuf_printf(&sb, "<%s ", fut->ob_base.ob_type->tp_name);
    ca_future_repr_info(&sb, fut, true);
    ca_strbuf_printf(&sb, ">");
    return sb.len;
}

/* MARK: - Destruction */

void ca_future_finalize(ca_future *fut) {
    if (!fut->fut_log_tb || fut->fut_exception == NULL || fut->fut_loop == NULL) return;
    fut->fut_log_tb = 0;
    /* The handler receives the future: resurrect it for the call. */
    fut->ob_base.ob_refcnt = 1;
    char msg[64];
    snprintf(msg, sizeof msg, "%s exception was never retrieved", fut->ob_base.ob_type->tp_name);
    ca_exception_context ctx = {
        .message = msg,
        .exception = fut->fut_exception,
        .future = fut,
    };
    ca_loop_call_exception_handler(fut->fut_loop, &ctx);
    fut->ob_base.ob_refcnt--;
}

/* Releases the done callbacks, unrun: their arguments through their
 * release functions, and their contexts. */
static void future_drop_callbacks(ca_future *fut) {
    if (fut->fut_callback0.fn != NULL) {
        ca_callback cb = fut->fut_callback0;
        ca_context *ctx = fut->fut_context0;
        fut->fut_callback0 = (ca_callback){0};
        fut->fut_context0 = NULL;
        entry_release(&cb, ctx);
    }
    ca_callback_list *l = fut->fut_callbacks;
    fut->fut_callbacks = NULL;
    if (l != NULL) {
        for (size_t i = 0; i < l->len; i++) entry_release(&l->items[i].cb, l->items[i].ctx);
        list_free(l);
    }
}

/* Releases the awaited_by link(s). */
static void future_drop_awaited_by(ca_future *fut) {
    if (fut->fut_awaited_by == NULL) return;
    void *by = fut->fut_awaited_by;
    bool is_set = fut->fut_awaited_by_is_set;
    fut->fut_awaited_by = NULL;
    fut->fut_awaited_by_is_set = 0;
    if (is_set) ptrset_free(by);
    else ca_decref(by);
}

void ca_future_drop_links(ca_future *fut) {
    future_drop_callbacks(fut);
    future_drop_awaited_by(fut);
}

void ca_future_clear_head(ca_future *fut) {
    if (CA_LIKELY(ca_future_head_is_plain(fut))) {
        CA_CLEAR(fut->fut_loop);
        return;
    }
    future_drop_callbacks(fut);
    CA_CLEAR(fut->fut_exception);
    ca_value_clear(&fut->fut_result);
    ca_free(fut->fut_cancel_msg);
    fut->fut_cancel_msg = NULL;
    CA_CLEAR(fut->fut_cancelled_exc);
    future_drop_awaited_by(fut);
    CA_CLEAR(fut->fut_loop);
}

static void future_dealloc(ca_object *op) {
    ca_future *fut = (ca_future *)op;
    if (CA_UNLIKELY(fut->fut_log_tb)) {
        ca_future_finalize(fut);
        if (op->ob_refcnt > 0) return; /* resurrected by the exception handler */
    }
    if (CA_LIKELY(ca_future_head_is_plain(fut))) CA_CLEAR(fut->fut_loop); /* clear_head's fast path, inline */
    else ca_future_clear_head(fut);
    ca_small_free(fut, sizeof(ca_future));
}
