/*
 * interp.c — a scenario body as a coroutine of the core's protocol.
 *
 * send/throw run the body's ops until one suspends: then the coroutine
 * returns YIELD with the future to wait on, exactly where the asyncio
 * operation suspends (the reference's `await` of the same operation). A
 * done future is never yielded; a coroutine (sleep, acquire, a `coro` body,
 * wait_for, a task group's exit, ...) is delegated to as `await` does
 * (`yield from`), its YIELDs passed through. Nothing else suspends (SPEC 2.4).
 *
 * Blocks are frames on an explicit stack. An op ends with a signal: next op,
 * an error raised (it->err), a `return` (it->ret), or a suspension. Raised
 * errors and returns unwind frame by frame, each block doing what its
 * Python statement does on the way out (reference: op_try, _context_block).
 */
#include "conformance.h"

#include <stdlib.h>
#include <string.h>

typedef enum fkind { FR_BODY, FR_TRY, FR_TIMEOUT, FR_TASKGROUP, FR_WITH, FR_REPEAT } fkind;

typedef enum phase {
    PH_BODY,      /* the block's body runs */
    PH_HANDLER,   /* try: an except handler runs */
    PH_FINALLY,   /* try: the finally body runs */
    PH_ACQUIRING, /* with: waiting for the lock */
    PH_EXITING,   /* taskgroup: waiting for __aexit__ */
} phase;

typedef struct frame {
    uint8_t kind;        /* fkind */
    uint8_t phase;
    uint8_t obj_kind;    /* with: the kind of obj */
    bool has_ret;        /* try in finally, taskgroup exiting: a return is under way */
    const op *blk;       /* the block's op; NULL for the body */
    const body *seq;     /* the ops running in this frame */
    size_t pc;           /* the next of them */
    ca_error *handling;  /* try in a handler: the error handled (owned) */
    ca_error *pending;   /* try in finally: the error to raise after it (owned) */
    const jv *ret;       /* the return under way (NULL: null) */
    int64_t rounds;      /* repeat: bodies completed */
    void *obj;           /* timeout: ca_timeout; taskgroup: ca_taskgroup; with: the lock-like (owned) */
} frame;

/* What the current suspension completes. */
typedef enum susp { SU_NONE, SU_OP, SU_WITH, SU_TG_EXIT } susp;

/* The body's own end, beyond the signals ops share. */
enum { S_END_RETURN = S_ABORT + 1, S_END_RAISE };

typedef struct interp {
    ca_coro co;          /* co_awaiting: the coroutine delegated to (owned) */
    run *r;
    const char *actor;
    frame *frames;
    size_t nframes, capframes;
    uint8_t susp;        /* susp */
    const op *susp_op;   /* SU_OP: the op that suspended */
    ca_future *awaited;  /* the future yielded (owned) */
    ca_error *err;       /* S_RAISE: the error under way (owned) */
    const jv *ret;       /* S_RETURN: the value under way */
} interp;

static ca_coro_status interp_send(ca_coro *self, ca_value value, ca_coro_result *res);
static ca_coro_status interp_throw(ca_coro *self, ca_error *exc, ca_coro_result *res);
static void interp_close(ca_coro *self);
static void interp_dealloc(ca_object *op);

static const ca_coro_type interp_type = {
    .base = {"body", sizeof(interp), interp_dealloc, &ca_CoroType},
    .send = interp_send,
    .throw_ = interp_throw,
    .close = interp_close,
};

/* MARK: - Frames */

static frame *top(interp *it) { return &it->frames[it->nframes - 1]; }

static frame *push(interp *it, fkind kind, phase ph, const op *blk, const body *seq) {
    if (it->nframes == it->capframes) {
        size_t cap = it->capframes ? it->capframes * 2 : 8;
        frame *f = realloc(it->frames, cap * sizeof *f);
        if (f == NULL) return NULL;
        it->frames = f;
        it->capframes = cap;
    }
    frame *f = &it->frames[it->nframes++];
    memset(f, 0, sizeof *f);
    f->kind = (uint8_t)kind;
    f->phase = (uint8_t)ph;
    f->blk = blk;
    f->seq = seq;
    return f;
}

static void pop(interp *it) {
    frame *f = top(it);
    CA_CLEAR(f->handling);
    CA_CLEAR(f->pending);
    CA_CLEAR(f->obj);
    it->nframes--;
}

/* MARK: - Lines */

static void err_line(interp *it, const char *label, const ca_error *err) {
    sbuf sb = {0};
    fmt_err(it->r, &sb, err);
    emit(it->r, it->actor, "%s !> %s", label, sb.p != NULL ? sb.p : "");
    free(sb.p);
}

/* `<label> -> <value>` */
static void val_line(interp *it, const char *label, const ca_value *v) {
    sbuf sb = {0};
    fmt_val(it->r, &sb, v);
    emit(it->r, it->actor, "%s -> %s", label, sb.p != NULL ? sb.p : "");
    free(sb.p);
}

/* "with x", "timeout t", "taskgroup g" */
static const char *block_label(const frame *f) { return f->blk->label; }

/* MARK: - Suspensions */

static sig complete(interp *it, const ca_value *v, ca_error *err);

/* `await fut` (Future.__await__): a done future gives its outcome at once. */
static sig await_future(interp *it, ca_future *fut, susp kind, const op *o, ca_coro_result *res) {
    it->susp = (uint8_t)kind;
    it->susp_op = o;
    if (fut->fut_state == CA_FUTURE_PENDING) {
        ca_future_set_blocking(fut, true);
        it->awaited = ca_incref(fut);
        res->future = ca_incref(fut);
        return S_SUSPEND;
    }
    ca_value v;
    ca_error *err = ca_future_result(fut, &v);
    return complete(it, &v, err);
}

/* What a delegated coroutine's resumption produced (not YIELD). */
static sig child_finished(interp *it, ca_coro_status st, ca_coro_result *res) {
    ca_coro *child = it->co.co_awaiting;
    it->co.co_awaiting = NULL;
    ca_value v = ca_none();
    ca_error *err = NULL;
    if (st == CA_CORO_RETURN) v = res->value;
    else err = res->error;
    res->value = ca_none();
    res->error = NULL;
    ca_decref(child);
    sig s = complete(it, &v, err);
    ca_value_clear(&v);
    return s;
}

/* `await coro`: delegates until it returns or raises; takes `coro`. */
static sig await_coro(interp *it, ca_coro *coro, susp kind, const op *o, ca_coro_result *res) {
    it->susp = (uint8_t)kind;
    it->susp_op = o;
    if (coro == NULL) return complete(it, NULL, ca_error_new(&ca_MemoryError, NULL));
    it->co.co_awaiting = coro;
    ca_coro_status st = ca_coro_send(coro, ca_none(), res);
    if (st == CA_CORO_YIELD) return S_SUSPEND;
    return child_finished(it, st, res);
}

/* The awaited operation ended: `v` (borrowed) or `err` (taken). */
static sig complete(interp *it, const ca_value *v, ca_error *err) {
    uint8_t kind = it->susp;
    const op *o = it->susp_op;
    it->susp = SU_NONE;
    it->susp_op = NULL;
    if (kind == SU_OP) {
        if (err != NULL) {
            err_line(it, o->label, err);
            it->err = err;
            return S_RAISE;
        }
        if (o->code == OP_ACQUIRE || o->code == OP_EVENT_WAIT || o->code == OP_COND_WAIT) {
            /* they return True, which the core spells INT 1 */
            emit(it->r, it->actor, "%s -> true", o->label);
        } else {
            val_line(it, o->label, v);
        }
        return S_NEXT;
    }
    if (kind == SU_NONE) {
        /* thrown in without a suspension of ours: raised where the body is */
        it->err = err;
        return err != NULL ? S_RAISE : S_NEXT;
    }
    frame *f = top(it);
    const char *label = block_label(f);
    if (kind == SU_WITH) {
        if (err != NULL) {
            err_line(it, label, err);
            pop(it);
            it->err = err;
            return S_RAISE;
        }
        emit(it->r, it->actor, "%s enter", label);
        f->phase = PH_BODY;
        return S_NEXT;
    }
    /* SU_TG_EXIT */
    bool has_ret = f->has_ret;
    const jv *ret = f->ret;
    if (err != NULL) {
        err_line(it, label, err);
        pop(it);
        it->err = err;
        return S_RAISE;
    }
    emit(it->r, it->actor, "%s -> null", label);
    pop(it);
    if (!has_ret) return S_NEXT;
    it->ret = ret;
    return S_RETURN;
}

/* MARK: - Suspending ops and blocks */

static ca_coro *acquire_of(void *obj, uint8_t kind) {
    if (kind == K_LOCK) return ca_lock_acquire(obj);
    if (kind == K_CONDITION) return ca_condition_acquire(obj);
    return ca_semaphore_acquire(obj);
}

static sig exec_suspending(interp *it, const op *o, ca_coro_result *res) {
    run *r = it->r;
    uint8_t kind = K_NONE;
    void *obj = NULL;
    if (o->code != OP_SLEEP) {
        unsigned kinds = o->code == OP_AWAIT                                 ? AWAITABLE_KINDS
                         : o->code == OP_ACQUIRE                             ? LOCKLIKE_KINDS
                         : o->code == OP_EVENT_WAIT                          ? KIND_BIT(K_EVENT)
                         : o->code == OP_COND_WAIT                           ? KIND_BIT(K_CONDITION)
                                                                             : KIND_BIT(K_QUEUE);
        obj = lookup(r, o->slot[F_TARGET], kinds, &kind);
        if (obj == NULL) return S_ABORT;
    }
    switch (o->code) {
    case OP_AWAIT:
        if (KIND_BIT(kind) & FUTURE_KINDS) return await_future(it, obj, SU_OP, o, res);
        return await_coro(it, ca_incref(obj), SU_OP, o, res);
    case OP_SLEEP:
        return await_coro(it, ca_sleep((double)o->f[F_MS]->i / 1000, jv_value(o->f[F_RESULT])), SU_OP, o, res);
    case OP_ACQUIRE: return await_coro(it, acquire_of(obj, kind), SU_OP, o, res);
    case OP_EVENT_WAIT: return await_coro(it, ca_event_wait(obj), SU_OP, o, res);
    case OP_COND_WAIT: return await_coro(it, ca_condition_wait(obj), SU_OP, o, res);
    case OP_PUT: return await_coro(it, ca_queue_put(obj, jv_value(o->f[F_VALUE])), SU_OP, o, res);
    case OP_GET: return await_coro(it, ca_queue_get(obj), SU_OP, o, res);
    default: return await_coro(it, ca_queue_join(obj), SU_OP, o, res);
    }
}

static sig no_memory(interp *it) {
    run_fail(it->r, "out of memory");
    return S_ABORT;
}

static sig enter_timeout(interp *it, const op *o) {
    ca_timeout *tm;
    ca_error *err;
    if (o->f[F_AT] != NULL)
        err = ca_timeout_at_new(o->f[F_AT]->kind == JV_NULL ? CA_NO_DEADLINE : ms_to_ns(o->f[F_AT]->i), &tm);
    else
        err = ca_timeout_new(o->f[F_DELAY]->kind == JV_NULL ? CA_NO_TIMEOUT : (double)o->f[F_DELAY]->i / 1000, &tm);
    if (err != NULL) {
        it->err = err;
        return S_RAISE;
    }
    declare(it->r, o->slot[F_ID], K_TIMEOUT, ca_incref(tm), false);
    err = ca_timeout_enter(tm);
    if (err != NULL) {
        ca_decref(tm);
        err_line(it, o->label, err);
        it->err = err;
        return S_RAISE;
    }
    emit(it->r, it->actor, "%s enter", o->label);
    frame *f = push(it, FR_TIMEOUT, PH_BODY, o, &o->body);
    if (f == NULL) {
        ca_decref(tm);
        return no_memory(it);
    }
    f->obj = tm;
    return S_NEXT;
}

static sig enter_taskgroup(interp *it, const op *o) {
    ca_taskgroup *tg = ca_taskgroup_new();
    if (tg == NULL) return no_memory(it);
    declare(it->r, o->slot[F_ID], K_TASKGROUP, ca_incref(tg), false);
    ca_error *err = ca_taskgroup_enter(tg);
    if (err != NULL) {
        ca_decref(tg);
        err_line(it, o->label, err);
        it->err = err;
        return S_RAISE;
    }
    emit(it->r, it->actor, "%s enter", o->label);
    frame *f = push(it, FR_TASKGROUP, PH_BODY, o, &o->body);
    if (f == NULL) {
        ca_decref(tg);
        return no_memory(it);
    }
    f->obj = tg;
    return S_NEXT;
}

static sig enter_with(interp *it, const op *o, ca_coro_result *res) {
    uint8_t kind;
    void *obj = lookup(it->r, o->slot[F_TARGET], LOCKLIKE_KINDS, &kind);
    if (obj == NULL) return S_ABORT;
    frame *f = push(it, FR_WITH, PH_ACQUIRING, o, &o->body);
    if (f == NULL) return no_memory(it);
    f->obj = ca_incref(obj);
    f->obj_kind = kind;
    return await_coro(it, acquire_of(obj, kind), SU_WITH, o, res);
}

/* The handled error `reraise` raises: that of the innermost except handler. */
static ca_error *handled_error(interp *it) {
    for (size_t i = it->nframes; i-- > 0;) {
        frame *f = &it->frames[i];
        if (f->kind == FR_TRY && f->phase == PH_HANDLER) return f->handling;
    }
    return NULL;
}

static sig exec_op(interp *it, const op *o, ca_coro_result *res) {
    switch (o->code) {
    case OP_AWAIT:
    case OP_SLEEP:
    case OP_ACQUIRE:
    case OP_EVENT_WAIT:
    case OP_COND_WAIT:
    case OP_PUT:
    case OP_GET:
    case OP_JOIN: return exec_suspending(it, o, res);
    case OP_TRY: return push(it, FR_TRY, PH_BODY, o, &o->body) != NULL ? S_NEXT : no_memory(it);
    case OP_TIMEOUT: return enter_timeout(it, o);
    case OP_TASKGROUP: return enter_taskgroup(it, o);
    case OP_WITH: return enter_with(it, o, res);
    case OP_REPEAT:
        if (o->f[F_COUNT]->i <= 0) return S_NEXT;
        return push(it, FR_REPEAT, PH_BODY, o, &o->body) != NULL ? S_NEXT : no_memory(it);
    case OP_RETURN:
        it->ret = o->f[F_VALUE];
        return S_RETURN;
    case OP_RAISE:
        it->err = make_error(o);
        return S_RAISE;
    case OP_RERAISE: {
        ca_error *e = handled_error(it);
        if (e == NULL) {
            run_fail(it->r, "reraise outside an except handler");
            return S_ABORT;
        }
        it->err = ca_incref(e);
        return S_RAISE;
    }
    default: {
        actx cx = {it->r, it->actor};
        return exec_simple_op(&cx, o);
    }
    }
}

/* MARK: - Unwinding */

static bool handler_matches(const handler *h, const ca_error *err) {
    for (size_t i = 0; i < h->ntypes; i++)
        if (ca_error_matches(err, h->types[i])) return true;
    return false;
}

/* A try frame leaves its body or handler: the finally body runs next. */
static sig to_finally(interp *it, frame *f) {
    CA_CLEAR(f->handling);
    f->phase = PH_FINALLY;
    f->seq = &f->blk->fin;
    f->pc = 0;
    return S_NEXT;
}

/* The end of a `with`, `timeout` block or task group's body in the ways
 * that do not suspend. `err` (taken) is the error leaving the body. */
static sig exit_scope(interp *it, frame *f, ca_error *err, sig ok) {
    const char *label = block_label(f);
    if (f->kind == FR_TIMEOUT) {
        err = ca_timeout_exit(f->obj, err);
    } else {
        /* with: __aexit__ releases; an error there replaces the body's */
        ca_error *rel = release_lock_like(f->obj, f->obj_kind);
        if (rel != NULL) {
            ca_error_set_context(rel, err);
            ca_decref(err);
            err = rel;
        }
    }
    pop(it);
    if (err != NULL) {
        err_line(it, label, err);
        it->err = err;
        return S_RAISE;
    }
    emit(it->r, it->actor, "%s -> null", label);
    return ok;
}

/* An error was raised in the frame's current ops (it->err). */
static sig frame_raise(interp *it, frame *f, ca_coro_result *res) {
    switch (f->kind) {
    case FR_BODY: {
        sbuf sb = {0};
        fmt_err(it->r, &sb, it->err);
        emit(it->r, it->actor, "raise %s", sb.p != NULL ? sb.p : "");
        free(sb.p);
        res->error = it->err;
        it->err = NULL;
        return S_END_RAISE;
    }
    case FR_TRY:
        if (f->phase == PH_BODY) {
            for (size_t i = 0; i < f->blk->nhandlers; i++) {
                const handler *h = &f->blk->handlers[i];
                if (!handler_matches(h, it->err)) continue;
                sbuf sb = {0};
                fmt_err(it->r, &sb, it->err);
                emit(it->r, it->actor, "caught %s", sb.p != NULL ? sb.p : "");
                free(sb.p);
                f->handling = it->err;
                it->err = NULL;
                f->phase = PH_HANDLER;
                f->seq = &h->body;
                f->pc = 0;
                return S_NEXT;
            }
        }
        if (f->phase != PH_FINALLY && f->blk->f[F_FINALLY] != NULL) {
            to_finally(it, f);
            f->pending = it->err;
            it->err = NULL;
            return S_NEXT;
        }
        /* no handler and no finally, or an error in finally replaces the pending one */
        pop(it);
        return S_RAISE;
    case FR_TIMEOUT:
    case FR_WITH: {
        ca_error *err = it->err;
        it->err = NULL;
        return exit_scope(it, f, err, S_NEXT);
    }
    case FR_TASKGROUP: {
        ca_error *err = it->err;
        it->err = NULL;
        f->phase = PH_EXITING;
        return await_coro(it, ca_taskgroup_exit(f->obj, err), SU_TG_EXIT, f->blk, res);
    }
    default:
        pop(it);
        return S_RAISE;
    }
}

/* A `return` leaves the frame (it->ret). */
static sig frame_return(interp *it, frame *f, ca_coro_result *res) {
    switch (f->kind) {
    case FR_BODY: {
        sbuf sb = {0};
        fmt_jv(&sb, it->ret);
        emit(it->r, it->actor, "return %s", sb.p != NULL ? sb.p : "");
        free(sb.p);
        res->value = jv_value(it->ret);
        return S_END_RETURN;
    }
    case FR_TRY:
        if (f->phase != PH_FINALLY && f->blk->f[F_FINALLY] != NULL) {
            to_finally(it, f);
            f->has_ret = true;
            f->ret = it->ret;
            return S_NEXT;
        }
        pop(it);
        return S_RETURN;
    case FR_TIMEOUT:
    case FR_WITH: return exit_scope(it, f, NULL, S_RETURN);
    case FR_TASKGROUP:
        f->has_ret = true;
        f->ret = it->ret;
        f->phase = PH_EXITING;
        return await_coro(it, ca_taskgroup_exit(f->obj, NULL), SU_TG_EXIT, f->blk, res);
    default:
        pop(it);
        return S_RETURN;
    }
}

/* The frame's ops ran to their end. */
static sig seq_end(interp *it, frame *f, ca_coro_result *res) {
    switch (f->kind) {
    case FR_BODY:
        it->ret = NULL;
        return frame_return(it, f, res);
    case FR_TRY:
        if (f->phase != PH_FINALLY) {
            if (f->blk->f[F_FINALLY] != NULL) return to_finally(it, f);
            pop(it);
            return S_NEXT;
        }
        if (f->pending != NULL) {
            it->err = f->pending;
            f->pending = NULL;
            pop(it);
            return S_RAISE;
        }
        if (f->has_ret) {
            it->ret = f->ret;
            pop(it);
            return S_RETURN;
        }
        pop(it);
        return S_NEXT;
    case FR_TIMEOUT:
    case FR_WITH: return exit_scope(it, f, NULL, S_NEXT);
    case FR_TASKGROUP:
        f->phase = PH_EXITING;
        return await_coro(it, ca_taskgroup_exit(f->obj, NULL), SU_TG_EXIT, f->blk, res);
    default:
        if (++f->rounds < f->blk->f[F_COUNT]->i) {
            f->pc = 0;
            return S_NEXT;
        }
        pop(it);
        return S_NEXT;
    }
}

/* MARK: - The protocol */

/* Drops everything the body holds without running anything more: the run
 * is over (teardown) or invalid. The task ends with `exc` or a
 * CancelledError, printing nothing. */
static void release_all(interp *it) {
    if (it->co.co_awaiting != NULL) {
        ca_coro *child = it->co.co_awaiting;
        it->co.co_awaiting = NULL;
        ca_coro_close(child);
        ca_decref(child);
    }
    CA_CLEAR(it->awaited);
    CA_CLEAR(it->err);
    while (it->nframes > 0) pop(it);
    it->co.co_state = CA_CORO_CLOSED;
}

static ca_coro_status abandon(interp *it, ca_error *exc, ca_coro_result *res) {
    release_all(it);
    res->future = NULL;
    res->value = ca_none();
    res->error = exc != NULL ? ca_incref(exc) : ca_error_new(&ca_CancelledError, NULL);
    return CA_CORO_RAISE;
}

static ca_coro_status drive(interp *it, sig s, ca_coro_result *res) {
    for (;;) {
        if (it->r->closed && s != S_SUSPEND) return abandon(it, NULL, res);
        frame *f = top(it);
        switch ((int)s) {
        case S_NEXT:
            if (f->pc >= f->seq->n) s = seq_end(it, f, res);
            else s = exec_op(it, &f->seq->ops[f->pc++], res);
            break;
        case S_RAISE: s = frame_raise(it, f, res); break;
        case S_RETURN: s = frame_return(it, f, res); break;
        case S_SUSPEND: it->co.co_state = CA_CORO_SUSPENDED; return CA_CORO_YIELD;
        case S_END_RETURN:
        case S_END_RAISE:
            release_all(it);
            return s == S_END_RETURN ? CA_CORO_RETURN : CA_CORO_RAISE;
        default: return abandon(it, NULL, res);
        }
    }
}

static ca_coro_status interp_send(ca_coro *self, ca_value value, ca_coro_result *res) {
    interp *it = (interp *)self;
    ca_value_clear(&value); /* results are read from what was awaited */
    bool starting = it->co.co_state == CA_CORO_CREATED;
    it->co.co_state = CA_CORO_RUNNING;
    run_touch(it->r);
    if (it->r->closed) return abandon(it, NULL, res);
    if (starting) {
        emit(it->r, it->actor, "start");
        return drive(it, S_NEXT, res);
    }
    sig s;
    if (it->co.co_awaiting != NULL) {
        ca_coro_status st = ca_coro_send(it->co.co_awaiting, ca_none(), res);
        if (st == CA_CORO_YIELD) {
            it->co.co_state = CA_CORO_SUSPENDED;
            return st;
        }
        s = child_finished(it, st, res);
    } else {
        ca_future *fut = it->awaited;
        it->awaited = NULL;
        ca_value v = ca_none();
        ca_error *err = fut == NULL || fut->fut_state == CA_FUTURE_PENDING
                            ? ca_error_new(&ca_RuntimeError, "await wasn't used with future")
                            : ca_future_result(fut, &v);
        s = complete(it, &v, err);
        ca_decref(fut);
    }
    return drive(it, s, res);
}

static ca_coro_status interp_throw(ca_coro *self, ca_error *exc, ca_coro_result *res) {
    interp *it = (interp *)self;
    if (it->co.co_state == CA_CORO_CREATED) {
        /* thrown into before it started: raises at once, the body never runs */
        it->co.co_state = CA_CORO_CLOSED;
        res->error = ca_incref(exc);
        return CA_CORO_RAISE;
    }
    it->co.co_state = CA_CORO_RUNNING;
    run_touch(it->r);
    if (it->r->closed) return abandon(it, exc, res);
    sig s;
    if (it->co.co_awaiting != NULL) {
        ca_coro_status st = ca_coro_throw(it->co.co_awaiting, exc, res);
        if (st == CA_CORO_YIELD) {
            it->co.co_state = CA_CORO_SUSPENDED;
            return st;
        }
        s = child_finished(it, st, res);
    } else {
        CA_CLEAR(it->awaited);
        s = complete(it, NULL, ca_incref(exc));
    }
    return drive(it, s, res);
}

static void interp_close(ca_coro *self) { release_all((interp *)self); }

static void interp_dealloc(ca_object *op) {
    interp *it = (interp *)op;
    release_all(it);
    free(it->frames);
    free(it);
}

ca_coro *interp_new(run *r, const char *actor, const body *b) {
    interp *it = calloc(1, sizeof *it);
    if (it == NULL) return NULL;
    it->co.ob_base.ob_refcnt = 1;
    it->co.ob_base.ob_type = &interp_type.base;
    it->co.co_name = "body";
    it->co.co_filename = __FILE__;
    it->co.co_state = CA_CORO_CREATED;
    it->r = r;
    it->actor = actor;
    if (push(it, FR_BODY, PH_BODY, NULL, b) == NULL) {
        free(it);
        return NULL;
    }
    return &it->co;
}
