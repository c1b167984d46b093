/*
 * combinators.c — ensure_future, gather (_GatheringFuture), shield, wait,
 * wait_for and as_completed (_AsCompletedIterator), mirroring
 * Lib/asyncio/tasks.py of 3.14 function by function. The closures of the
 * Python versions become a done callback plus an argument object (the
 * gathering future, the wait frame, the iterator) that holds their state.
 */
#include "combinators_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

CA_DEFINE_ERROR_TYPE(ca_StopAsyncIteration, "StopAsyncIteration", ca_Exception);

/* MARK: - Shared helpers */

void ca_release_object(void *arg) { ca_decref(arg); }

int64_t ca_seconds_to_ns(double seconds) {
    double ns = seconds * 1e9;
    if (ns >= 4e18) return (int64_t)4e18;
    if (ns <= -4e18) return -(int64_t)4e18;
    return (int64_t)llround(ns);
}

ca_error *ca_no_running_loop(void) { return ca_error_new(&ca_RuntimeError, "no running event loop"); }

static ca_error *no_memory(void) { return ca_error_new(&ca_MemoryError, NULL); }

static const char *type_name_of(const void *op) {
    return op != NULL ? ((const ca_object *)op)->ob_type->tp_name : "NoneType";
}

/* Reports an error raised inside one of our done callbacks, as a failing
 * Handle._run would. */
static void report_error(ca_loop *loop, ca_error *err) {
    if (err == NULL) return;
    ca_loop_report_callback_error(loop, NULL, err);
    ca_decref(err);
}

/* fut.exception() of a done future, the common case inline: a result
 * (log_tb is only ever set with an exception, so there is nothing to mark
 * retrieved). Returns what ca_future_exception returns. */
static inline ca_error *done_future_exception(ca_future *fut, ca_error **out) {
    if (CA_LIKELY(fut->fut_state == CA_FUTURE_FINISHED && fut->fut_exception == NULL && fut->fut_loop != NULL)) {
        *out = NULL;
        return NULL;
    }
    return ca_future_exception(fut, out);
}

/* fut.exception(), only for its side effect of marking it retrieved. */
static void mark_exception_retrieved(ca_future *fut) {
    ca_error *exc = NULL;
    ca_decref(ca_future_exception(fut, &exc));
    ca_decref(exc);
}

/*
 * set(items) in argument order: first[i] is the index of the first item
 * equal to items[i]. Uses `stack` (cap entries, >= 2 * n wanted) when big
 * enough; returns the array (dedup_free it), NULL when out of memory. Above
 * the stack's size a hash table of 32-bit slots (index + 1, 0 = empty)
 * follows the array in the same block: half the memory to clear and touch
 * of a table of size_t.
 */
#define DEDUP_STACK 32

static size_t dedup_table_cap(size_t n) {
    size_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

static size_t dedup_bytes(size_t n) { return n * sizeof(size_t) + dedup_table_cap(n) * sizeof(uint32_t); }

static size_t *dedup_first(void *const *items, size_t n, size_t *stack) {
    if (n <= DEDUP_STACK / 2) {
        for (size_t i = 0; i < n; i++) {
            size_t j = 0;
            while (items[j] != items[i]) j++;
            stack[i] = j;
        }
        return stack;
    }
    if (n >= UINT32_MAX) return NULL; /* more than the slots can number (and than memory holds) */
    size_t cap = dedup_table_cap(n);
    size_t *first = ca_small_alloc(dedup_bytes(n));
    if (first == NULL) return NULL;
    uint32_t *table = (uint32_t *)(first + n);
    memset(table, 0, cap * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        uintptr_t h = (uintptr_t)items[i];
        size_t k = (size_t)((h >> 4) ^ (h >> 13)) & (cap - 1);
        while (table[k] != 0 && items[table[k] - 1] != items[i]) k = (k + 1) & (cap - 1);
        if (table[k] == 0) table[k] = (uint32_t)i + 1;
        first[i] = table[k] - 1;
    }
    return first;
}

static void dedup_free(size_t *first, size_t *stack, size_t n) {
    if (first != stack) ca_small_free(first, dedup_bytes(n));
}

/* _release_waiter(waiter, *args), as a done callback and as a timer callback. */
static void release_waiter(void *arg) {
    ca_future *waiter = arg;
    if (waiter->fut_state == CA_FUTURE_PENDING) report_error(waiter->fut_loop, ca_future_set_result(waiter, ca_none()));
}

static void release_waiter_done(ca_future *fut, void *arg) { release_waiter(arg); }

/* MARK: - Result lists */

static void result_list_dealloc(ca_object *op);
const ca_type ca_ResultListType = {"list", sizeof(ca_result_list), result_list_dealloc, NULL};

static size_t result_list_bytes(size_t len) { return sizeof(ca_result_list) + len * sizeof(ca_value); }

/* A list of `len` items left unset: the caller stores every one before
 * anything else can see the list. NULL when out of memory. */
static ca_result_list *result_list_alloc(size_t len) {
    ca_result_list *l = ca_small_alloc(result_list_bytes(len));
    if (l == NULL) return NULL;
    ca_object_init(l, &ca_ResultListType);
    l->len = len;
    return l;
}

static ca_result_list *result_list_new(size_t len) {
    ca_result_list *l = result_list_alloc(len);
    if (l == NULL) return NULL;
    for (size_t i = 0; i < len; i++) l->items[i] = ca_none();
    return l;
}

static void result_list_dealloc(ca_object *op) {
    ca_result_list *l = (ca_result_list *)op;
    for (size_t i = 0; i < l->len; i++) ca_value_clear(&l->items[i]);
    ca_small_free(l, result_list_bytes(l->len));
}

bool ca_result_list_check(const void *op) { return ca_object_is_instance(op, &ca_ResultListType); }

ca_error *ca_result_list_error(const ca_result_list *list, size_t i) {
    const ca_value *v = &list->items[i];
    if (v->kind != CA_VALUE_OBJECT || !ca_object_is_instance(v->u.obj, &ca_ErrorType)) return NULL;
    return (ca_error *)v->u.obj;
}

ca_result_list *ca_result_list_of(const ca_future *fut) {
    if (fut->fut_state != CA_FUTURE_FINISHED || fut->fut_exception != NULL) return NULL;
    if (fut->fut_result.kind != CA_VALUE_OBJECT || !ca_result_list_check(fut->fut_result.u.obj)) return NULL;
    return (ca_result_list *)fut->fut_result.u.obj;
}

/* MARK: - ensure_future */

ca_error *ca_ensure_future(void *aw, ca_loop *loop, ca_future **out) {
    *out = NULL;
    if (ca_future_check(aw)) {
        ca_future *fut = aw;
        if (loop != NULL && loop != fut->fut_loop)
            return ca_error_new(&ca_ValueError,
                                "The future belongs to a different loop than the one specified as the loop argument");
        *out = ca_incref(fut);
        return NULL;
    }
    if (!ca_coro_check(aw))
        return ca_error_new(&ca_TypeError, "An asyncio.Future, a coroutine or an awaitable is required");
    if (loop == NULL) loop = ca_get_running_loop();
    if (loop == NULL) return ca_error_new(&ca_RuntimeError, "There is no current event loop");
    ca_task *task;
    /* create_task closes the coroutine when it refuses it, as the
     * `except RuntimeError: coro_or_future.close()` of tasks.py does. */
    ca_error *err = ca_loop_create_task(loop, ca_incref(aw), NULL, &task);
    if (err != NULL) return err;
    *out = (ca_future *)task;
    return NULL;
}

/* ca_ensure_future with its common case inline, for gather's loop over its
 * arguments: a Future or Task of `loop` (not NULL) is its own future. */
static CA_ALWAYS_INLINE ca_error *ensure_future(void *aw, ca_loop *loop, ca_future **out) {
    const ca_type *t = aw != NULL ? ((const ca_object *)aw)->ob_type : NULL;
    if (CA_LIKELY((t == &ca_TaskType || t == &ca_FutureType) && ((ca_future *)aw)->fut_loop == loop)) {
        *out = ca_incref((ca_future *)aw);
        return NULL;
    }
    return ca_ensure_future(aw, loop, out);
}

/* MARK: - gather */

typedef struct gathering_future {
    CA_FUTURE_HEAD(fut);
    ca_task *cur_task;        /* the task that called gather (owned) until every child reported */
    size_t nchildren;         /* one slot per argument */
    size_t nfuts;             /* distinct children */
    size_t nfinished;
    bool return_exceptions;
    bool cancel_requested;    /* _cancel_requested */
    bool published;           /* false while gather() runs: the `outer is None` of tasks.py */
    bool eager_pass;          /* gather() is processing the children done at creation */
    ca_future *children[];    /* owned, one reference per slot (duplicates repeat) */
} gathering_future;

static void gathering_dealloc(ca_object *op);
static bool gathering_cancel(ca_future *fut, const char *msg);

const ca_future_type ca_GatheringFutureType = {
    {"_GatheringFuture", sizeof(gathering_future), gathering_dealloc, &ca_FutureType},
    gathering_cancel,
};

static size_t gathering_bytes(size_t n) { return sizeof(gathering_future) + n * sizeof(ca_future *); }

static bool is_gathering(const ca_future *fut) {
    return fut->ob_base.ob_type == &ca_GatheringFutureType.ft_base;
}

bool ca_gather_cancel_requested(const ca_future *gathering) {
    return is_gathering(gathering) && ((const gathering_future *)gathering)->cancel_requested;
}

/* _GatheringFuture.cancel: cancels the children instead of itself, like
 * Task.cancel(); the outer completes once they report. */
static bool gathering_cancel(ca_future *fut, const char *msg) {
    gathering_future *outer = (gathering_future *)fut;
    if (outer->fut_state != CA_FUTURE_PENDING) return false;
    bool ret = false;
    ca_incref(outer);
    for (size_t i = 0; i < outer->nchildren; i++) {
        if (outer->children[i] != NULL && ca_future_cancel(outer->children[i], msg)) ret = true;
    }
    if (ret) {
        /* If any child tasks were actually cancelled, we should propagate
         * the cancellation request regardless of *return_exceptions*
         * argument (bpo-32684). */
        outer->cancel_requested = true;
    }
    ca_decref(outer);
    return ret;
}

/* The list of results, in argument order, once every child is done. */
static ca_error *gathering_collect(gathering_future *outer, ca_result_list **out) {
    ca_result_list *results = result_list_alloc(outer->nchildren); /* the loop sets every item */
    if (results == NULL) return no_memory();
    for (size_t i = 0; i < outer->nchildren; i++) {
        ca_future *fut = outer->children[i];
        if (fut->fut_state == CA_FUTURE_CANCELLED) {
            /* Not _make_cancelled_error(): that is consumed at most once. */
            const char *msg = fut->fut_cancel_msg != NULL ? fut->fut_cancel_msg : "";
            results->items[i] = ca_obj(ca_error_new(&ca_CancelledError, msg));
            continue;
        }
        ca_error *exc = NULL;
        ca_decref(done_future_exception(fut, &exc));
        results->items[i] = exc != NULL ? ca_obj(exc) : ca_value_copy(&fut->fut_result);
    }
    *out = results;
    return NULL;
}

/* Drops the outer's references to its children. Once the outer is done (or
 * was never published) nothing reads them, and a child still pending would
 * otherwise keep the outer alive through its callback, and the outer the
 * child: a cycle CPython's collector breaks and we must not create. */
static void gathering_release_children(gathering_future *outer) {
    for (size_t i = 0; i < outer->nchildren; i++) CA_CLEAR(outer->children[i]);
}

/* outer.set_exception(exc) / outer.set_result(value) from the callback. */
static void gathering_finish(gathering_future *outer, ca_error *exc, ca_value value) {
    ca_error *err = exc != NULL ? ca_future_set_exception((ca_future *)outer, exc)
                                : ca_future_set_result((ca_future *)outer, value);
    report_error(outer->fut_loop, err);
    if (!outer->eager_pass) gathering_release_children(outer);
}

static void gather_child_done(gathering_future *outer, ca_future *fut);

/* gather's _done_callback, registered on every distinct pending child and
 * called directly for the children that were done at creation. Its common
 * case, a child with a result that is not the last, does nothing more than
 * count it; gather_child_done has the rest of tasks.py's _done_callback, out
 * of line so this part saves no registers. */
static void gather_done_callback(ca_future *fut, void *arg) {
    gathering_future *outer = arg;
    outer->nfinished++;
    if (outer->cur_task != NULL) {
        ca_future_discard_from_awaited_by_inline(fut, (ca_future *)outer->cur_task);
        if (outer->nfinished == outer->nfuts) CA_CLEAR(outer->cur_task);
    }
    if (CA_LIKELY(outer->published && outer->fut_state == CA_FUTURE_PENDING && fut->fut_state == CA_FUTURE_FINISHED &&
                  fut->fut_exception == NULL && outer->nfinished != outer->nfuts))
        return;
    gather_child_done(outer, fut);
}

static __attribute__((noinline)) void gather_child_done(gathering_future *outer, ca_future *fut) {
    if (!outer->published || outer->fut_state != CA_FUTURE_PENDING) {
        if (fut->fut_state != CA_FUTURE_CANCELLED) mark_exception_retrieved(fut);
        return;
    }

    if (!outer->return_exceptions) {
        if (fut->fut_state == CA_FUTURE_CANCELLED) {
            /* Check cancelled() first: exception() would raise. */
            ca_error *exc = ca_future_make_cancelled_error(fut);
            gathering_finish(outer, exc, ca_none());
            ca_decref(exc);
            return;
        }
        ca_error *exc = NULL;
        ca_decref(done_future_exception(fut, &exc));
        if (exc != NULL) {
            gathering_finish(outer, exc, ca_none());
            ca_decref(exc);
            return;
        }
    }

    if (outer->nfinished == outer->nfuts) {
        ca_result_list *results = NULL;
        ca_error *err = gathering_collect(outer, &results);
        if (err != NULL) {
            gathering_finish(outer, err, ca_none());
            ca_decref(err);
            return;
        }
        if (outer->cancel_requested) {
            /* If gather is being cancelled we must propagate the
             * cancellation regardless of *return_exceptions*. Like
             * tasks.py this asks the last child of the loop above. */
            ca_decref(results);
            ca_error *exc = ca_future_make_cancelled_error(outer->children[outer->nchildren - 1]);
            gathering_finish(outer, exc, ca_none());
            ca_decref(exc);
        } else {
            gathering_finish(outer, NULL, ca_obj(results));
        }
    }
}

static ca_error *gather_empty(ca_loop *loop, ca_future **out) {
    if (loop == NULL) loop = ca_get_running_loop();
    if (loop == NULL) return ca_error_new(&ca_RuntimeError, "There is no current event loop");
    ca_future *outer = ca_loop_create_future(loop);
    ca_result_list *empty = outer != NULL ? result_list_new(0) : NULL;
    if (empty == NULL) {
        ca_decref(outer);
        return no_memory();
    }
    ca_error *err = ca_future_set_result(outer, ca_obj(empty));
    if (err != NULL) {
        ca_decref(outer);
        return err;
    }
    *out = outer;
    return NULL;
}

ca_error *ca_gather(ca_loop *loop, void *const *aws, size_t n, bool return_exceptions, ca_future **out) {
    *out = NULL;
    if (n == 0) return gather_empty(loop, out);

    ca_loop *running = ca_get_running_loop();
    ca_task *cur_task = NULL;
    if (running != NULL) ca_decref(ca_current_task(running, &cur_task));
    if (loop == NULL) loop = running;
    if (loop == NULL) {
        /* `loop = futures._get_loop(fut)` after the first ensure_future;
         * for anything but a future that call fails here. */
        if (!ca_future_check(aws[0])) {
            ca_future *never;
            return ca_ensure_future(aws[0], NULL, &never);
        }
        loop = ((ca_future *)aws[0])->fut_loop;
    }

    size_t stack[DEDUP_STACK];
    size_t *first = dedup_first(aws, n, stack);
    gathering_future *outer = first != NULL ? ca_small_alloc(gathering_bytes(n)) : NULL;
    if (outer == NULL) {
        if (first != NULL) dedup_free(first, stack, n);
        return no_memory();
    }
    memset(outer, 0, gathering_bytes(n));
    ca_object_init(outer, &ca_GatheringFutureType.ft_base);
    ca_future_init_head((ca_future *)outer, loop);
    outer->nchildren = n;
    outer->return_exceptions = return_exceptions;
    outer->cur_task = ca_incref(cur_task);

    /* Children done at creation are processed once the outer exists (3.12+);
     * their slots are remembered in `first` itself, marked by the top bit. */
    const size_t done_mark = (size_t)1 << (sizeof(size_t) * 8 - 1);
    ca_error *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++) {
        if (first[i] != i) {
            outer->children[i] = ca_incref(outer->children[first[i] & ~done_mark]);
            continue;
        }
        ca_future *fut;
        err = ensure_future(aws[i], loop, &fut);
        if (err != NULL) break;
        if ((void *)fut != aws[i]) {
            /* A task made for a coroutine argument: the caller cannot
             * control it, so no "destroyed but pending" warning. */
            ((ca_task *)fut)->task_log_destroy_pending = 0;
        }
        outer->children[i] = fut;
        outer->nfuts++;
        if (fut->fut_state != CA_FUTURE_PENDING) {
            first[i] |= done_mark;
            continue;
        }
        if (cur_task != NULL) err = ca_future_add_to_awaited_by_inline(fut, (ca_future *)cur_task);
        if (err == NULL)
            err = ca_future_add_done_callback_current(fut, gather_done_callback, ca_incref(outer), ca_release_object);
    }
    if (err != NULL) {
        /* Children created so far keep running; their callbacks find the
         * outer unpublished and only mark their exceptions retrieved. */
        dedup_free(first, stack, n);
        gathering_release_children(outer);
        ca_decref(outer);
        return err;
    }
    outer->published = true;
    outer->eager_pass = true;
    for (size_t i = 0; i < n; i++) {
        if (first[i] & done_mark) gather_done_callback(outer->children[i], outer);
    }
    outer->eager_pass = false;
    if (outer->fut_state != CA_FUTURE_PENDING) gathering_release_children(outer);
    dedup_free(first, stack, n);
    *out = (ca_future *)outer;
    return NULL;
}

void ca_gather_break_cycles(ca_future *fut) {
    if (!is_gathering(fut) || fut->fut_state != CA_FUTURE_PENDING) return;
    gathering_future *outer = (gathering_future *)fut;
    ca_incref(outer);
    ca_task *cur_task = outer->cur_task;
    outer->cur_task = NULL;
    for (size_t i = 0; i < outer->nchildren; i++) {
        ca_future *child = outer->children[i];
        if (child == NULL || child->fut_state != CA_FUTURE_PENDING) continue;
        ca_future_remove_done_callback(child, gather_done_callback, outer);
        if (cur_task != NULL) ca_future_discard_from_awaited_by(child, (ca_future *)cur_task);
        ca_gather_break_cycles(child);
    }
    gathering_release_children(outer);
    ca_decref(cur_task);
    ca_decref(outer);
}

static void gathering_dealloc(ca_object *op) {
    gathering_future *outer = (gathering_future *)op;
    ca_future_finalize((ca_future *)outer);
    if (op->ob_refcnt > 0) return; /* resurrected by the exception handler */
    for (size_t i = 0; i < outer->nchildren; i++) CA_CLEAR(outer->children[i]);
    CA_CLEAR(outer->cur_task);
    size_t bytes = gathering_bytes(outer->nchildren);
    ca_future_clear_head((ca_future *)outer);
    ca_small_free(outer, bytes);
}

/* MARK: - shield */

static void shield_log_on_exception(ca_future *fut, void *arg) {
    if (fut->fut_state == CA_FUTURE_CANCELLED) return;
    ca_error *exc = NULL;
    ca_decref(ca_future_exception(fut, &exc));
    if (exc == NULL) return;
    char msg[128];
    snprintf(msg, sizeof msg, "%s exception in shielded future", exc->type->name);
    ca_exception_context ctx = {.message = msg, .exception = exc, .future = fut};
    ca_loop_call_exception_handler(fut->fut_loop, &ctx);
    ca_decref(exc);
}

static void shield_clear_awaited_by(ca_future *inner, void *arg) {
    ca_future_discard_from_awaited_by(inner, arg);
}

static void shield_inner_done(ca_future *inner, void *arg) {
    ca_future *outer = arg;
    if (outer->fut_state == CA_FUTURE_CANCELLED) return;
    if (inner->fut_state == CA_FUTURE_CANCELLED) {
        ca_future_cancel(outer, NULL);
        return;
    }
    ca_error *exc = NULL;
    ca_decref(ca_future_exception(inner, &exc));
    if (exc != NULL) {
        report_error(outer->fut_loop, ca_future_set_exception(outer, exc));
        ca_decref(exc);
    } else {
        report_error(outer->fut_loop, ca_future_set_result(outer, ca_value_copy(&inner->fut_result)));
    }
}

/* One shield() whose outer is pending, listed on its loop so a closing loop
 * can untie outer and inner. It is the argument of the outer's
 * shield_outer_done registration, which owns it; while listed it holds the
 * outer too, since a cycle may be all that reaches it. */
typedef struct shield_link {
    struct shield_link *prev, *next;
    ca_loop *loop;    /* the list's owner while listed, else NULL */
    ca_future *outer; /* strong while listed, else NULL */
    ca_future *inner; /* strong */
} shield_link;

/* Takes `l` off its loop's list, dropping its hold on the outer. */
static void shield_unlink(shield_link *l) {
    if (l->loop == NULL) return;
    if (l->prev != NULL) l->prev->next = l->next;
    else l->loop->shields = l->next;
    if (l->next != NULL) l->next->prev = l->prev;
    l->prev = l->next = NULL;
    l->loop = NULL;
    ca_future *outer = l->outer;
    l->outer = NULL;
    ca_decref(outer);
}

static void shield_link_release(void *arg) {
    shield_link *l = arg;
    shield_unlink(l);
    ca_decref(l->inner);
    ca_small_free(l, sizeof *l);
}

static void shield_outer_done(ca_future *outer, void *arg) {
    shield_link *l = arg;
    ca_future *inner = l->inner;
    shield_unlink(l);
    if (inner->fut_state != CA_FUTURE_PENDING) return;
    ca_future_remove_done_callback(inner, shield_inner_done, outer);
    /* Keep only one callback to log on cancel. */
    ca_future_remove_done_callback(inner, shield_log_on_exception, NULL);
    report_error(inner->fut_loop, ca_future_add_done_callback(inner, shield_log_on_exception, NULL, NULL, NULL));
}

/* The argument `fn` was registered with on `fut` (the first such), or NULL. */
static void *callback_arg(const ca_future *fut, ca_done_fn fn) {
    if (fut->fut_callback0.fn == fn) return fut->fut_callback0.arg;
    const ca_callback_list *l = fut->fut_callbacks;
    for (size_t i = 0; l != NULL && i < l->len; i++)
        if (l->items[i].cb.fn == fn) return l->items[i].cb.arg;
    return NULL;
}

/* Takes the listed shield `l` off its loop's list and, while its outer is
 * pending (a done one's callback is scheduled already and frees `l` when
 * dropped), unties it from its inner and from the task awaiting the inner. */
static void shield_break_cycles(shield_link *l) {
    ca_future *outer = ca_incref(l->outer), *inner = ca_incref(l->inner);
    shield_unlink(l);
    if (outer->fut_state == CA_FUTURE_PENDING) {
        ca_future_remove_done_callback(outer, shield_outer_done, l); /* frees l */
        ca_future_remove_done_callback(inner, shield_inner_done, outer);
        ca_future *cur_task;
        while ((cur_task = callback_arg(inner, shield_clear_awaited_by)) != NULL) {
            ca_incref(cur_task);
            ca_future_remove_done_callback(inner, shield_clear_awaited_by, cur_task);
            ca_future_discard_from_awaited_by(inner, cur_task);
            ca_decref(cur_task);
        }
    }
    ca_decref(outer);
    ca_decref(inner);
}

void ca_shields_break_cycles(ca_loop *loop) {
    /* Breaking may run releases that shield again (on the closed loop, so
     * unlisted): take one at a time. */
    while (loop->shields != NULL) shield_break_cycles(loop->shields);
}

ca_error *ca_shield(void *aw, ca_future **out) {
    *out = NULL;
    ca_future *inner;
    ca_error *err = ca_ensure_future(aw, NULL, &inner);
    if (err != NULL) return err;
    if (inner->fut_state != CA_FUTURE_PENDING) {
        *out = inner; /* shortcut */
        return NULL;
    }
    ca_loop *loop = inner->fut_loop;
    ca_future *outer = ca_loop_create_future(loop);
    if (outer == NULL) {
        ca_decref(inner);
        return no_memory();
    }
    if (loop->closed) {
        /* No callback can run on a closed loop, so nothing could ever pass
         * the inner's outcome on: the outer starts as close() leaves the
         * shields pending when it ran, untied from the inner. Tied, the
         * pair would be a cycle nothing cuts any more. */
        ca_decref(inner);
        *out = outer;
        return NULL;
    }
    ca_task *cur_task = NULL;
    ca_decref(ca_current_task(loop, &cur_task));
    if (cur_task != NULL) {
        err = ca_future_add_to_awaited_by(inner, (ca_future *)cur_task);
        if (err == NULL)
            err = ca_future_add_done_callback(inner, shield_clear_awaited_by, ca_incref(cur_task),
                                              ca_release_object, NULL);
    }
    if (err == NULL)
        err = ca_future_add_done_callback(inner, shield_inner_done, ca_incref(outer), ca_release_object, NULL);
    if (err == NULL) {
        shield_link *l = ca_small_alloc(sizeof *l);
        if (l == NULL) {
            err = no_memory();
        } else {
            *l = (shield_link){.loop = loop, .outer = ca_incref(outer), .inner = ca_incref(inner),
                               .next = loop->shields};
            if (l->next != NULL) l->next->prev = l;
            loop->shields = l;
            err = ca_future_add_done_callback(outer, shield_outer_done, l, shield_link_release, NULL);
        }
    }
    ca_decref(inner);
    if (err != NULL) {
        ca_decref(outer);
        return err;
    }
    *out = outer;
    return NULL;
}

/* MARK: - wait */

static void wait_sets_dealloc(ca_object *op);
const ca_type ca_WaitSetsType = {"tuple", sizeof(ca_wait_sets), wait_sets_dealloc, NULL};

bool ca_wait_sets_check(const void *op) { return ca_object_is_instance(op, &ca_WaitSetsType); }

static size_t wait_sets_bytes(size_t n) { return sizeof(ca_wait_sets) + n * sizeof(ca_future *); }

static void wait_sets_dealloc(ca_object *op) {
    ca_wait_sets *ws = (ca_wait_sets *)op;
    size_t n = ws->ndone + ws->npending;
    for (size_t i = 0; i < n; i++) ca_decref(ws->futures[i]);
    ca_small_free(ws, wait_sets_bytes(n));
}

#define WAIT_INLINE 4

typedef struct wait_frame {
    ca_cframe cf;
    double timeout;
    int return_when;
    size_t n;                    /* items in `fs` */
    ca_object **fs;              /* owned references; `inline_fs` or heap */
    ca_object *inline_fs[WAIT_INLINE];
    ca_future *waiter;           /* owned */
    ca_handle *timeout_handle;   /* owned */
    ca_task *cur_task;           /* owned */
    int64_t counter;
} wait_frame;

static void wait_finalize(wait_frame *self) {
    for (size_t i = 0; i < self->n; i++) ca_decref(self->fs[i]);
    if (self->fs != self->inline_fs) ca_free(self->fs);
    self->n = 0;
    CA_CLEAR(self->waiter);
    if (self->timeout_handle != NULL) ca_handle_cancel(self->timeout_handle);
    CA_CLEAR(self->timeout_handle);
    CA_CLEAR(self->cur_task);
}

/* _wait's _on_completion; `arg` is the wait frame. */
static void wait_on_completion(ca_future *f, void *arg) {
    wait_frame *w = arg;
    w->counter -= 1;
    bool release = w->counter <= 0 || w->return_when == CA_FIRST_COMPLETED;
    if (!release && w->return_when == CA_FIRST_EXCEPTION && f->fut_state != CA_FUTURE_CANCELLED) {
        ca_error *exc = NULL;
        ca_decref(ca_future_exception(f, &exc));
        release = exc != NULL;
        ca_decref(exc);
    }
    if (release) {
        if (w->timeout_handle != NULL) ca_handle_cancel(w->timeout_handle);
        if (w->waiter->fut_state == CA_FUTURE_PENDING)
            report_error(w->waiter->fut_loop, ca_future_set_result(w->waiter, ca_none()));
    }
    if (w->cur_task != NULL) ca_future_discard_from_awaited_by(f, (ca_future *)w->cur_task);
}

/* wait()'s argument checks; deduplicates self->fs in place (set(fs)). */
static ca_error *wait_check_args(wait_frame *self) {
    if (self->n == 0) return ca_error_new(&ca_ValueError, "Set of Tasks/Futures is empty.");
    if (self->return_when != CA_FIRST_COMPLETED && self->return_when != CA_FIRST_EXCEPTION &&
        self->return_when != CA_ALL_COMPLETED)
        return ca_error_format(&ca_ValueError, "Invalid return_when value: %d", self->return_when);
    size_t stack[DEDUP_STACK];
    size_t *first = dedup_first((void *const *)self->fs, self->n, stack);
    if (first == NULL) return no_memory();
    size_t k = 0;
    for (size_t i = 0; i < self->n; i++) {
        if (first[i] == i) self->fs[k++] = self->fs[i];
        else ca_decref(self->fs[i]);
    }
    dedup_free(first, stack, self->n);
    self->n = k;
    for (size_t i = 0; i < self->n; i++) {
        if (ca_coro_check(self->fs[i]))
            return ca_error_new(&ca_TypeError, "Passing coroutines is forbidden, use tasks explicitly.");
    }
    for (size_t i = 0; i < self->n; i++) {
        if (!ca_future_check(self->fs[i]))
            return ca_error_format(&ca_TypeError, "expect a list of futures, not %s", type_name_of(self->fs[i]));
    }
    return NULL;
}

/* _wait(fs, timeout, return_when, loop)'s setup before its await. */
static ca_error *wait_arm(wait_frame *self, ca_loop *loop) {
    self->waiter = ca_loop_create_future(loop);
    if (self->waiter == NULL) return no_memory();
    ca_error *err;
    if (!isnan(self->timeout)) {
        err = ca_loop_call_later(loop, ca_seconds_to_ns(self->timeout), release_waiter, ca_incref(self->waiter),
                                 ca_release_object, NULL, &self->timeout_handle);
        if (err != NULL) return err;
    }
    self->counter = (int64_t)self->n;
    ca_task *cur_task = NULL;
    ca_decref(ca_current_task(loop, &cur_task));
    self->cur_task = ca_incref(cur_task);
    for (size_t i = 0; i < self->n; i++) {
        ca_future *f = (ca_future *)self->fs[i];
        err = ca_future_add_done_callback(f, wait_on_completion, ca_incref(self), ca_release_object, NULL);
        if (err == NULL && cur_task != NULL) err = ca_future_add_to_awaited_by(f, (ca_future *)cur_task);
        if (err != NULL) return err;
    }
    return NULL;
}

/* _wait's `finally:`. tasks.py leaves the awaited_by edge of a future still
 * pending when wait returns; we drop every edge here, since nothing awaits
 * those futures any more and, without a cycle collector, the edge (and the
 * frame's reference to the task) would keep the task alive. */
static void wait_disarm(wait_frame *self) {
    if (self->timeout_handle != NULL) ca_handle_cancel(self->timeout_handle);
    for (size_t i = 0; i < self->n; i++) {
        ca_future *f = (ca_future *)self->fs[i];
        ca_future_remove_done_callback(f, wait_on_completion, self);
        if (self->cur_task != NULL) ca_future_discard_from_awaited_by(f, (ca_future *)self->cur_task);
    }
    CA_CLEAR(self->cur_task);
}

/* on_abandon hook: the frame is closed at its await (its task was destroyed,
 * or its loop closed), so the `finally:` above never runs; without this the
 * callbacks on the futures would keep the frame, and it them, alive. */
static void wait_abandon(ca_future *waiter, void *arg) {
    (void)waiter;
    wait_disarm(arg);
}

static ca_error *wait_result(wait_frame *self, ca_value *out) {
    ca_wait_sets *ws = ca_small_alloc(wait_sets_bytes(self->n));
    if (ws == NULL) return no_memory();
    ca_object_init(ws, &ca_WaitSetsType);
    ws->ndone = ws->npending = 0;
    for (size_t i = 0; i < self->n; i++) {
        ca_future *f = (ca_future *)self->fs[i];
        if (f->fut_state != CA_FUTURE_PENDING) ws->futures[ws->ndone++] = ca_incref(f);
    }
    for (size_t i = 0; i < self->n; i++) {
        ca_future *f = (ca_future *)self->fs[i];
        if (f->fut_state == CA_FUTURE_PENDING) ws->futures[ws->ndone + ws->npending++] = ca_incref(f);
    }
    *out = ca_obj(ws);
    return NULL;
}

CA_CORO_TYPE(wait_type, wait_frame, wait, wait_finalize);

CA_CORO_BODY(wait, wait_frame) {
    ca_error *err;
    ca_loop *loop;
    ca_value result;
    CA_BEGIN;
    err = wait_check_args(self);
    if (err != NULL) CA_RAISE(err);
    err = ca_get_running_loop_checked(&loop);
    if (err == NULL) err = wait_arm(self, loop);
    if (err != NULL) {
        wait_disarm(self);
        CA_RAISE(err);
    }
    self->cf.on_abandon = wait_abandon;
    self->cf.on_abandon_arg = self;
    CA_AWAIT_TRY(ca_incref(self->waiter), err);
    self->cf.on_abandon = NULL;
    wait_disarm(self);
    if (err != NULL) CA_RAISE(err);
    err = wait_result(self, &result);
    if (err != NULL) CA_RAISE(err);
    CA_RETURN(result);
    CA_END;
}

ca_coro *ca_wait(void *const *fs, size_t n, double timeout, int return_when) {
    wait_frame *f = CA_CORO_NEW(wait_type, wait_frame);
    if (f == NULL) return NULL;
    f->fs = f->inline_fs;
    if (n > WAIT_INLINE) {
        f->fs = ca_malloc(n * sizeof(ca_object *));
        if (f->fs == NULL) {
            f->fs = f->inline_fs;
            ca_decref(f);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) f->fs[i] = ca_incref(fs[i]);
    f->n = n;
    f->timeout = timeout;
    f->return_when = return_when;
    return &f->cf.co;
}

/* MARK: - wait_for */

typedef struct wait_for_frame {
    ca_cframe cf;
    ca_object *aw;        /* owned */
    double timeout;
    ca_future *fut;       /* ensure_future(aw) on the timeout <= 0 path (owned) */
    ca_future *waiter;    /* _cancel_and_wait's (owned) */
    ca_timeout *tm;       /* owned */
} wait_for_frame;

static void wait_for_finalize(wait_for_frame *self) {
    CA_CLEAR(self->aw);
    if (self->fut != NULL && self->waiter != NULL)
        ca_future_remove_done_callback(self->fut, release_waiter_done, self->waiter);
    CA_CLEAR(self->fut);
    CA_CLEAR(self->waiter);
    CA_CLEAR(self->tm);
}

/* fut.result() as the value to return, or the error it raises. */
static ca_error *result_copy(ca_future *fut, ca_value *out) {
    ca_value v;
    ca_error *err = ca_future_result(fut, &v);
    *out = err == NULL ? ca_value_copy(&v) : ca_none();
    return err;
}

/* _cancel_and_wait(fut)'s part before its await. */
static ca_error *cancel_and_wait_arm(wait_for_frame *self) {
    ca_loop *loop;
    ca_error *err = ca_get_running_loop_checked(&loop);
    if (err != NULL) return err;
    self->waiter = ca_loop_create_future(loop);
    if (self->waiter == NULL) return no_memory();
    err = ca_future_add_done_callback(self->fut, release_waiter_done, ca_incref(self->waiter), ca_release_object,
                                      NULL);
    if (err != NULL) return err;
    ca_future_cancel(self->fut, NULL);
    return NULL;
}

/* `raise TimeoutError from exc` */
static ca_error *timeout_error_from(ca_error *exc) {
    ca_error *te = ca_error_new(&ca_TimeoutError, NULL);
    ca_error_set_context(te, exc);
    ca_error_set_cause(te, exc);
    ca_decref(exc);
    return te;
}

CA_CORO_TYPE(wait_for_type, wait_for_frame, wait_for, wait_for_finalize);

CA_CORO_BODY(wait_for, wait_for_frame) {
    ca_error *err;
    ca_value value;
    CA_BEGIN;
    if (!isnan(self->timeout) && self->timeout <= 0) {
        err = ca_ensure_future(self->aw, NULL, &self->fut);
        if (err != NULL) CA_RAISE(err);
        if (self->fut->fut_state != CA_FUTURE_PENDING) {
            err = result_copy(self->fut, &value);
            if (err != NULL) CA_RAISE(err);
            CA_RETURN(value);
        }
        /* await _cancel_and_wait(fut): waiting on a separate future keeps
         * this coroutine itself reliably cancellable. */
        err = cancel_and_wait_arm(self);
        if (err == NULL) CA_AWAIT_TRY(ca_incref(self->waiter), err);
        if (self->waiter != NULL) ca_future_remove_done_callback(self->fut, release_waiter_done, self->waiter);
        if (err != NULL) CA_RAISE(err);
        err = result_copy(self->fut, &value);
        if (err == NULL) CA_RETURN(value);
        if (ca_error_matches(err, &ca_CancelledError)) CA_RAISE(timeout_error_from(err));
        CA_RAISE(err);
    }

    /* async with timeouts.timeout(timeout): return await fut */
    err = ca_timeout_new(self->timeout, &self->tm);
    if (err == NULL) err = ca_timeout_enter(self->tm);
    if (err != NULL) CA_RAISE(err);
    if (ca_future_check(self->aw)) {
        CA_AWAIT_TRY(ca_incref(self->aw), err);
        value = err == NULL ? ca_value_copy(&CA_RESULT()) : ca_none();
    } else if (ca_coro_check(self->aw)) {
        CA_AWAIT_CORO_TRY(ca_incref(self->aw), err);
        value = CA_CORO_RESULT();
        CA_CORO_RESULT() = ca_none();
    } else {
        value = ca_none();
        err = ca_error_format(&ca_TypeError, "object %s can't be used in 'await' expression", type_name_of(self->aw));
    }
    err = ca_timeout_exit(self->tm, err);
    if (err != NULL) {
        ca_value_clear(&value);
        CA_RAISE(err);
    }
    CA_RETURN(value);
    CA_END;
}

ca_coro *ca_wait_for(void *aw, double timeout) {
    wait_for_frame *f = CA_CORO_NEW(wait_for_type, wait_for_frame);
    if (f == NULL) return NULL;
    f->aw = ca_incref(aw);
    f->timeout = timeout;
    return &f->cf.co;
}

/* MARK: - as_completed */

struct ca_as_completed_iter {
    ca_object ob_base;
    ca_loop *loop;                /* owned */
    ca_handle *timeout_handle;    /* owned */
    size_t nfuts;                 /* distinct futures made so far */
    size_t todo_cap;              /* distinct arguments: the capacity of todo and done */
    ca_future **todo;             /* still pending (owned; NULL: removed); done follows it */
    size_t todo_first;            /* slots before it are all NULL */
    size_t ntodo;
    size_t todo_left;             /* steps left */
    ca_future **done;             /* completed, in order (owned; NULL: the timeout's sentinel) */
    size_t done_head;
    size_t done_tail;
    ca_future **getters;          /* Queue._getters: a ring of waiting futures (owned) */
    size_t getters_head;
    size_t getters_len;
    size_t getters_cap;
};

static void as_completed_dealloc(ca_object *op);
const ca_type ca_AsCompletedIterType = {"_AsCompletedIterator", sizeof(ca_as_completed_iter),
                                        as_completed_dealloc, NULL};

/* One block holds todo (cap slots) and the done queue (cap + 1 slots). */
static size_t as_completed_todo_bytes(size_t cap) { return (2 * cap + 1) * sizeof(ca_future *); }

static void as_completed_dealloc(ca_object *op) {
    ca_as_completed_iter *it = (ca_as_completed_iter *)op;
    for (size_t i = 0; i < it->nfuts; i++) ca_decref(it->todo[i]);
    for (size_t i = it->done_head; i < it->done_tail; i++) ca_decref(it->done[i]);
    for (size_t i = 0; i < it->getters_len; i++) ca_decref(it->getters[(it->getters_head + i) % it->getters_cap]);
    ca_small_free(it->getters, it->getters_cap * sizeof *it->getters);
    if (it->todo != NULL) ca_small_free(it->todo, as_completed_todo_bytes(it->todo_cap));
    if (it->timeout_handle != NULL) ca_handle_cancel(it->timeout_handle);
    CA_CLEAR(it->timeout_handle);
    CA_CLEAR(it->loop);
    ca_small_free(it, sizeof *it);
}

size_t ca_as_completed_remaining(const ca_as_completed_iter *it) { return it->todo_left; }

/* Queue._wakeup_next(self._getters) */
static void as_completed_wakeup_next(ca_as_completed_iter *it) {
    while (it->getters_len > 0) {
        ca_future *getter = it->getters[it->getters_head];
        it->getters_head = (it->getters_head + 1) % it->getters_cap;
        it->getters_len--;
        bool pending = getter->fut_state == CA_FUTURE_PENDING;
        if (pending) report_error(it->loop, ca_future_set_result(getter, ca_none()));
        ca_decref(getter);
        if (pending) break;
    }
}

/* Queue.put_nowait(f) on the done queue; takes the reference. */
static void as_completed_put(ca_as_completed_iter *it, ca_future *f) {
    it->done[it->done_tail++] = f;
    as_completed_wakeup_next(it);
}

static ca_error *as_completed_add_getter(ca_as_completed_iter *it, ca_future *getter) {
    if (it->getters_len == it->getters_cap) {
        size_t cap = it->getters_cap ? it->getters_cap * 2 : 4;
        ca_future **g = ca_small_alloc(cap * sizeof *g);
        if (g == NULL) return no_memory();
        for (size_t i = 0; i < it->getters_len; i++) g[i] = it->getters[(it->getters_head + i) % it->getters_cap];
        ca_small_free(it->getters, it->getters_cap * sizeof *g);
        it->getters = g;
        it->getters_head = 0;
        it->getters_cap = cap;
    }
    it->getters[(it->getters_head + it->getters_len++) % it->getters_cap] = ca_incref(getter);
    return NULL;
}

/* self._getters.remove(getter), when it is still there. */
static void as_completed_remove_getter(ca_as_completed_iter *it, ca_future *getter) {
    for (size_t i = 0; i < it->getters_len; i++) {
        if (it->getters[(it->getters_head + i) % it->getters_cap] != getter) continue;
        for (size_t j = i; j + 1 < it->getters_len; j++)
            it->getters[(it->getters_head + j) % it->getters_cap] =
                it->getters[(it->getters_head + j + 1) % it->getters_cap];
        it->getters_len--;
        ca_decref(getter);
        return;
    }
}

/* _handle_completion(f) */
static void as_completed_handle_completion(ca_future *f, void *arg) {
    ca_as_completed_iter *it = arg;
    if (it->ntodo == 0) return; /* _handle_timeout() was here first. */
    for (size_t i = it->todo_first; i < it->nfuts; i++) {
        if (it->todo[i] != f) continue;
        it->todo[i] = NULL;
        it->ntodo--;
        while (it->todo_first < it->nfuts && it->todo[it->todo_first] == NULL) it->todo_first++;
        as_completed_put(it, f);
        break;
    }
    if (it->ntodo == 0 && it->timeout_handle != NULL) ca_handle_cancel(it->timeout_handle);
}

/* _handle_timeout() */
static void as_completed_handle_timeout(void *arg) {
    ca_as_completed_iter *it = arg;
    for (size_t i = it->todo_first; i < it->nfuts; i++) {
        ca_future *f = it->todo[i];
        if (f == NULL) continue;
        it->todo[i] = NULL;
        ca_future_remove_done_callback(f, as_completed_handle_completion, it);
        ca_decref(f);
        as_completed_put(it, NULL); /* sentinel for _wait_for_one() */
    }
    it->todo_first = it->nfuts;
    it->ntodo = 0;
}

ca_error *ca_as_completed(ca_loop *loop, void *const *aws, size_t n, double timeout, ca_as_completed_iter **out) {
    *out = NULL;
    if (loop == NULL) loop = ca_get_running_loop();
    if (loop == NULL && n > 0 && ca_future_check(aws[0])) loop = ((ca_future *)aws[0])->fut_loop;
    if (loop == NULL) return ca_error_new(&ca_RuntimeError, "There is no current event loop");
    ca_as_completed_iter *it = ca_small_alloc(sizeof *it);
    if (it == NULL) return no_memory();
    memset(it, 0, sizeof *it);
    ca_object_init(it, &ca_AsCompletedIterType);
    it->loop = ca_incref(loop);

    size_t stack[DEDUP_STACK];
    size_t *first = dedup_first(aws, n, stack);
    size_t nfuts = 0;
    for (size_t i = 0; first != NULL && i < n; i++) nfuts += first[i] == i;
    it->todo = first != NULL ? ca_small_alloc(as_completed_todo_bytes(nfuts)) : NULL;
    if (it->todo != NULL) memset(it->todo, 0, as_completed_todo_bytes(nfuts));
    it->todo_cap = nfuts;
    if (it->todo == NULL) {
        if (first != NULL) dedup_free(first, stack, n);
        ca_decref(it);
        return no_memory();
    }
    it->done = it->todo + it->todo_cap;
    ca_error *err = NULL;
    for (size_t i = 0; i < n && err == NULL; i++) {
        if (first[i] != i) continue;
        err = ca_ensure_future(aws[i], loop, &it->todo[it->nfuts]);
        if (err == NULL) it->nfuts++;
    }
    dedup_free(first, stack, n);
    it->ntodo = it->todo_left = it->nfuts;
    for (size_t i = 0; i < it->nfuts && err == NULL; i++)
        err = ca_future_add_done_callback(it->todo[i], as_completed_handle_completion, ca_incref(it),
                                          ca_release_object, NULL);
    if (err == NULL && it->nfuts > 0 && !isnan(timeout))
        err = ca_loop_call_later(loop, ca_seconds_to_ns(timeout), as_completed_handle_timeout, ca_incref(it),
                                 ca_release_object, NULL, &it->timeout_handle);
    if (err != NULL) {
        for (size_t i = 0; i < it->nfuts; i++)
            ca_future_remove_done_callback(it->todo[i], as_completed_handle_completion, it);
        ca_decref(it);
        return err;
    }
    *out = it;
    return NULL;
}

typedef struct wait_for_one_frame {
    ca_cframe cf;
    ca_as_completed_iter *it;   /* owned */
    ca_future *getter;          /* owned */
    bool resolve;               /* __next__: return the result, not the future */
    bool anext;                 /* __anext__: take the step when awaited */
} wait_for_one_frame;

static void wait_for_one_finalize(wait_for_one_frame *self) {
    if (self->getter != NULL) as_completed_remove_getter(self->it, self->getter);
    CA_CLEAR(self->getter);
    CA_CLEAR(self->it);
}

CA_CORO_TYPE(wait_for_one_type, wait_for_one_frame, wait_for_one, wait_for_one_finalize);

/* _wait_for_one(resolve) with `await self._done.get()` (Queue.get) inline;
 * for __anext__ preceded by its step accounting. */
CA_CORO_BODY(wait_for_one, wait_for_one_frame) {
    ca_error *err;
    ca_loop *loop;
    ca_future *f;
    ca_as_completed_iter *it = self->it;
    CA_BEGIN;
    if (self->anext) {
        if (it->todo_left == 0) CA_RAISE(ca_error_new(&ca_StopAsyncIteration, NULL));
        it->todo_left--;
    }
    while (it->done_head == it->done_tail) {
        err = ca_get_running_loop_checked(&loop);
        if (err != NULL) CA_RAISE(err);
        self->getter = ca_loop_create_future(loop);
        if (self->getter == NULL) CA_RAISE(no_memory());
        err = as_completed_add_getter(it, self->getter);
        if (err != NULL) CA_RAISE(err);
        CA_AWAIT_TRY(ca_incref(self->getter), err);
        if (err != NULL) {
            ca_future_cancel(self->getter, NULL); /* just in case it is not done yet */
            as_completed_remove_getter(it, self->getter);
            if (it->done_head != it->done_tail && self->getter->fut_state != CA_FUTURE_CANCELLED)
                as_completed_wakeup_next(it);
            CA_RAISE(err);
        }
        CA_CLEAR(self->getter);
    }
    f = it->done[it->done_head];
    it->done[it->done_head++] = NULL;
    if (f == NULL) CA_RAISE(ca_error_new(&ca_TimeoutError, NULL)); /* the timeout's sentinel */
    if (!self->resolve) CA_RETURN(ca_obj(f));
    {
        ca_value value;
        err = result_copy(f, &value);
        ca_decref(f);
        if (err != NULL) CA_RAISE(err);
        CA_RETURN(value);
    }
    CA_END;
}

static wait_for_one_frame *wait_for_one_new(ca_as_completed_iter *it, bool resolve, bool anext) {
    wait_for_one_frame *f = CA_CORO_NEW(wait_for_one_type, wait_for_one_frame);
    if (f == NULL) return NULL;
    f->it = ca_incref(it);
    f->resolve = resolve;
    f->anext = anext;
    return f;
}

ca_error *ca_as_completed_next(ca_as_completed_iter *it, ca_coro **out) {
    *out = NULL;
    if (it->todo_left == 0) return ca_error_new(&ca_StopIteration, NULL);
    wait_for_one_frame *f = wait_for_one_new(it, true, false);
    if (f == NULL) return no_memory();
    it->todo_left--;
    *out = &f->cf.co;
    return NULL;
}

ca_coro *ca_as_completed_anext(ca_as_completed_iter *it) {
    wait_for_one_frame *f = wait_for_one_new(it, false, true);
    return f != NULL ? &f->cf.co : NULL;
}
