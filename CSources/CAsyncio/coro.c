/*
 * coro.c — the coroutine protocol (PyIter_Send's send/throw/close) and the
 * stackless kit behind the CA_AWAIT macros of coro.h.
 */
#include "internal.h"

#include <string.h>

const ca_type ca_CoroType = {"coroutine", sizeof(ca_coro), NULL, NULL};
const ca_type ca_CFrameType = {"cframe", sizeof(ca_cframe), ca_cframe_dealloc, &ca_CoroType};

bool ca_coro_check(const void *op) {
    if (op == NULL) return false;
    const ca_type *base = ((const ca_object *)op)->ob_type->tp_base;
    if (CA_LIKELY(base == &ca_CFrameType || base == &ca_CoroType)) return true; /* kit frames, direct subtypes */
    return ca_object_is_instance(op, &ca_CoroType);
}

static inline const ca_coro_type *coro_type_of(const ca_coro *coro) {
    return (const ca_coro_type *)coro->ob_base.ob_type;
}

static inline void result_reset(ca_coro_result *res) {
    res->future = NULL;
    res->value = ca_none();
    res->error = NULL;
}

static ca_coro_status refuse_resume(const ca_coro *coro, ca_coro_result *res) {
    if (coro->co_state == CA_CORO_RUNNING)
        res->error = ca_error_new(&ca_ValueError, "coroutine already executing");
    else
        res->error = ca_error_new(&ca_RuntimeError, "cannot reuse already awaited coroutine");
    return CA_CORO_RAISE;
}


ca_coro_status ca_coro_send(ca_coro *coro, ca_value value, ca_coro_result *res) {
    result_reset(res);
    if (CA_UNLIKELY(coro->co_state == CA_CORO_RUNNING || coro->co_state == CA_CORO_CLOSED)) {
        ca_value_clear(&value);
        return refuse_resume(coro, res);
    }
    const ca_coro_type *t = coro_type_of(coro);
    if (CA_LIKELY(t->send == ca_cframe_send)) {
        /* kit coroutines: skip the indirect call (they ignore sent values) */
        ca_value_clear(&value);
        return ca_cframe_resume((ca_cframe *)coro, NULL, res);
    }
    return t->send(coro, value, res);
}

ca_coro_status ca_coro_throw(ca_coro *coro, ca_error *exc, ca_coro_result *res) {
    result_reset(res);
    if (CA_UNLIKELY(coro->co_state == CA_CORO_RUNNING || coro->co_state == CA_CORO_CLOSED))
        return refuse_resume(coro, res);
    return coro_type_of(coro)->throw_(coro, exc, res);
}

void ca_coro_close(ca_coro *coro) {
    if (coro->co_state == CA_CORO_CLOSED || coro->co_state == CA_CORO_RUNNING) return;
    coro_type_of(coro)->close(coro);
}

/* MARK: - The kit */

ca_coro *ca_cframe_new(const ca_cframe_type *type, size_t size) {
    if (size < sizeof(ca_cframe)) return NULL;
    ca_cframe *cf = ca_small_alloc(size);
    if (cf == NULL) return NULL;
    memset(cf, 0, size);
    ca_object_init(cf, &type->coro_type.base);
    cf->co.co_name = type->name;
    cf->co.co_filename = type->filename;
    cf->co.co_firstlineno = type->firstlineno;
    cf->co.co_state = CA_CORO_CREATED;
    return &cf->co;
}

static inline const ca_cframe_type *cframe_type_of(const ca_cframe *cf) {
    return (const ca_cframe_type *)cf->co.ob_base.ob_type;
}

/* Releases what a finished or abandoned suspension holds. */
static inline void cframe_release_suspension(ca_cframe *cf) {
    if (CA_UNLIKELY(cf->co.co_awaiting != NULL)) {
        ca_coro *child = cf->co.co_awaiting;
        cf->co.co_awaiting = NULL;
        ca_coro_close(child);
        ca_decref(child);
    }
    CA_CLEAR(cf->exc);
    CA_CLEAR(cf->awaited);
    ca_value_clear(&cf->subvalue);
}

/* Resumes the body, first forwarding to an awaited inner coroutine
 * ("yield from") until it finishes. `exc` is borrowed. */
ca_coro_status ca_cframe_resume(ca_cframe *cf, ca_error *exc, ca_coro_result *res) {
    cf->co.co_state = CA_CORO_RUNNING;
    if (cf->co.co_awaiting != NULL) {
        ca_coro *child = cf->co.co_awaiting;
        ca_coro_status st = exc ? ca_coro_throw(child, exc, res) : ca_coro_send_none(child, res);
        if (st == CA_CORO_YIELD) {
            cf->co.co_state = CA_CORO_SUSPENDED;
            return st;
        }
        cf->co.co_awaiting = NULL;
        if (st == CA_CORO_RETURN) {
            ca_value_clear(&cf->subvalue);
            cf->subvalue = res->value;
            res->value = ca_none();
        } else {
            CA_CLEAR(cf->exc);
            cf->exc = res->error;
            res->error = NULL;
        }
        ca_decref(child);
    } else if (exc != NULL) {
        CA_CLEAR(cf->exc);
        cf->exc = ca_incref(exc);
    }
    ca_coro_status st = cframe_type_of(cf)->body(cf, res);
    if (st == CA_CORO_YIELD) {
        cf->co.co_state = CA_CORO_SUSPENDED;
    } else {
        cf->co.co_state = CA_CORO_CLOSED;
        cf->co.co_lineno = 0;
        cframe_release_suspension(cf);
    }
    return st;
}

ca_coro_status ca_cframe_send(ca_coro *self, ca_value value, ca_coro_result *res) {
    ca_value_clear(&value); /* kit bodies read results from the awaited future */
    return ca_cframe_resume((ca_cframe *)self, NULL, res);
}

ca_coro_status ca_cframe_throw(ca_coro *self, ca_error *exc, ca_coro_result *res) {
    ca_cframe *cf = (ca_cframe *)self;
    if (cf->co.co_state == CA_CORO_CREATED) {
        /* coro.throw() before the first send raises at once; the body never runs. */
        cf->co.co_state = CA_CORO_CLOSED;
        res->error = ca_incref(exc);
        return CA_CORO_RAISE;
    }
    return ca_cframe_resume(cf, exc, res);
}

void ca_cframe_close(ca_coro *self) {
    ca_cframe *cf = (ca_cframe *)self;
    if (cf->on_abandon != NULL && cf->co.co_state == CA_CORO_SUSPENDED && cf->awaited != NULL) {
        void (*fn)(ca_future *, void *) = cf->on_abandon;
        cf->on_abandon = NULL;
        fn(cf->awaited, cf->on_abandon_arg);
    }
    cf->on_abandon = NULL;
    cf->co.co_state = CA_CORO_CLOSED;
    cf->co.co_lineno = 0;
    cframe_release_suspension(cf);
}

void ca_cframe_dealloc(ca_object *op) {
    ca_cframe *cf = (ca_cframe *)op;
    const ca_cframe_type *t = cframe_type_of(cf);
    if (cf->co.co_state != CA_CORO_CLOSED) ca_cframe_close(&cf->co);
    if (t->finalize != NULL) t->finalize(cf);
    cframe_release_suspension(cf);
    ca_small_free(cf, t->coro_type.base.tp_basicsize);
}

bool ca_cframe_await_begin(ca_cframe *cf, ca_future *fut, int line, ca_coro_result *res) {
    ca_decref(cf->awaited);
    cf->awaited = fut;
    if (CA_UNLIKELY(fut == NULL)) {
        CA_CLEAR(cf->exc);
        cf->exc = ca_error_new(&ca_MemoryError, NULL);
        return false;
    }
    if (fut->fut_state != CA_FUTURE_PENDING) return false; /* a done future never suspends */
    fut->fut_blocking = 1;
    cf->co.co_lineno = line;
    res->future = ca_incref(fut);
    return true;
}

ca_error *ca_cframe_await_end(ca_cframe *cf) {
    if (cf->exc != NULL) {
        ca_error *e = cf->exc;
        cf->exc = NULL;
        return e;
    }
    ca_future *fut = cf->awaited;
    /* the common end of an await: a result (what future.result() returns
     * without raising; no exception to mark retrieved) */
    if (CA_LIKELY(fut->fut_state == CA_FUTURE_FINISHED && fut->fut_exception == NULL)) return NULL;
    if (CA_UNLIKELY(fut->fut_state == CA_FUTURE_PENDING))
        return ca_error_new(&ca_RuntimeError, "await wasn't used with future");
    ca_value ignored;
    return ca_future_result(fut, &ignored);
}

bool ca_cframe_await_coro_begin(ca_cframe *cf, ca_coro *coro, int line, ca_coro_result *res) {
    CA_CLEAR(cf->exc);
    if (CA_UNLIKELY(coro == NULL)) {
        cf->exc = ca_error_new(&ca_MemoryError, NULL);
        return false;
    }
    cf->co.co_lineno = line;
    cf->co.co_awaiting = coro;
    ca_coro_status st = ca_coro_send_none(coro, res);
    if (st == CA_CORO_YIELD) return true;
    cf->co.co_awaiting = NULL;
    if (st == CA_CORO_RETURN) {
        ca_value_clear(&cf->subvalue);
        cf->subvalue = res->value;
        res->value = ca_none();
    } else {
        cf->exc = res->error;
        res->error = NULL;
    }
    ca_decref(coro);
    return false;
}

ca_error *ca_cframe_take_exc(ca_cframe *cf) {
    ca_error *e = cf->exc;
    cf->exc = NULL;
    return e;
}
