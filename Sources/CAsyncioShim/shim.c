/*
 * shim.c — the C side of the Swift layer: the Swift coroutine type, the
 * callback slots, the box for Swift values, the Swift error types and the
 * Swift runtime entry points (casyncio_shim.h).
 */
#include "casyncio_shim.h"
/* The core's per-thread small-block freelists, inline (ca_small_alloc). */
#include "../../CSources/CAsyncio/internal.h"

#include <dlfcn.h>
#include <stdatomic.h>
#include <string.h>

/* MARK: - The Swift runtime */

/* Exported by libswift_Concurrency with the Swift calling convention. */
extern void *swift_task_getCurrent(void) __attribute__((swiftcall));
extern void swift_task_cancel(void *task) __attribute__((swiftcall));
/* Exported by libswiftCore with the C calling convention. */
extern void *swift_retain(void *object);
extern void swift_release(void *object);

void *cas_swift_task_current(void) { return swift_task_getCurrent(); }
void cas_swift_task_cancel(void *task) { swift_task_cancel(task); }
void cas_swift_retain(void *object) { (void)swift_retain(object); }

/* The parts of the runtime's layout cas_continuation_resume_to relies on
 * (64-bit; swift/ABI/Task.h). */
enum {
    /* AsyncTask::ResumeContext, its first field after the Job header, which
     * Task.h pins at eight words (static_assert(sizeof(Job) == 8 * sizeof(void*))). */
    TASK_RESUME_CONTEXT_OFFSET = 8 * sizeof(void *),
    /* The value of _swift_concurrency_debug_internal_layout_version these
     * offsets were read for (the runtime bumps it when the layout debuggers
     * read changes). */
    KNOWN_TASK_LAYOUT_VERSION = 1,
};
typedef struct cas_continuation_context {
    void *parent;                      /* AsyncContext::Parent */
    void *resume_parent;               /* AsyncContext::ResumeParent */
    size_t flags;                      /* bit 0 CanThrow, bit 1 IsExecutorSwitchForced */
    _Atomic size_t await_synchronization; /* ContinuationStatus: 0 pending, 1 awaited, 2 resumed */
    void *error_result;
    void *normal_result;
    void *resume_to_identity;          /* SerialExecutorRef ResumeToExecutor */
    uintptr_t resume_to_implementation;
} cas_continuation_context;

/* The metadata of AsyncTask objects when the runtime's layout is the one
 * above, else NULL (retargeting off). Written once by cas_install. */
static const void *_Atomic known_task_metadata;

static void continuation_retarget_setup(void) {
    const unsigned *version = dlsym(RTLD_DEFAULT, "_swift_concurrency_debug_internal_layout_version");
    const void *const *metadata = dlsym(RTLD_DEFAULT, "_swift_concurrency_debug_asyncTaskMetadata");
    if (sizeof(void *) == 8 && version != NULL && *version == KNOWN_TASK_LAYOUT_VERSION && metadata != NULL) {
        atomic_store(&known_task_metadata, *metadata);
    }
}

bool cas_continuation_retarget_supported(void) { return atomic_load(&known_task_metadata) != NULL; }

bool cas_continuation_resume_to(void *cont, void *identity, uintptr_t implementation) {
    const void *metadata = atomic_load_explicit(&known_task_metadata, memory_order_relaxed);
    if (metadata == NULL || cont == NULL) return false;
    const void *isa;
    memcpy(&isa, cont, sizeof isa);
    if (isa != metadata) return false;
    cas_continuation_context *ctx;
    memcpy(&ctx, (char *)cont + TASK_RESUME_CONTEXT_OFFSET, sizeof ctx);
    if (ctx == NULL || ctx->flags != 0 || ctx->error_result != NULL ||
        atomic_load_explicit(&ctx->await_synchronization, memory_order_relaxed) != 1 ||
        ctx->resume_to_identity != NULL || ctx->resume_to_implementation != 0) {
        return false;
    }
    ctx->resume_to_identity = identity;
    ctx->resume_to_implementation = implementation;
    return true;
}

void cas_swift_release(void *object) { swift_release(object); }

/* MARK: - Per-thread windows */

_Thread_local cas_tls cas_tls_state __attribute__((tls_model("initial-exec")));

/* MARK: - Hooks */

static cas_hooks hooks;
static atomic_bool hooks_installed;

void cas_install(const cas_hooks *h) {
    bool expected = false;
    if (atomic_compare_exchange_strong(&hooks_installed, &expected, true)) {
        hooks = *h;
        continuation_retarget_setup();
    }
}

/* MARK: - Swift coroutines */

/* Coroutines and callback slots come from the core's per-thread freelists
 * (ca_small_alloc): a loop thread that spawns tasks in batches reuses the
 * same blocks, and what a thread keeps goes back to the allocator at its
 * exit, as do blocks it frees after that. */
_Static_assert(sizeof(cas_coro) <= CA_SMALL_MAX, "a Swift coroutine is a pooled block");
_Static_assert(CAS_SLOT_SIZE <= CA_SMALL_MAX, "a callback slot is a pooled block");

void cas_freelists_clear(void) { ca_freelists_clear(); }

void *cas_slot_alloc(void) { return ca_small_alloc(CAS_SLOT_SIZE); }

void cas_slot_free(void *slot) { ca_small_free(slot, CAS_SLOT_SIZE); }

static void swift_coro_dealloc(ca_object *op);

static ca_coro_status swift_coro_send(ca_coro *self, ca_value value, ca_coro_result *res) {
    ca_value_clear(&value); /* a body reads results from what it awaited */
    return hooks.send((cas_coro *)self, res);
}

static ca_coro_status swift_coro_throw(ca_coro *self, ca_error *exc, ca_coro_result *res) {
    return hooks.throw_((cas_coro *)self, exc, res);
}

static void swift_coro_close(ca_coro *self) { hooks.close((cas_coro *)self); }

const ca_coro_type cas_SwiftCoroType = {
    .base = {"swift", sizeof(cas_coro), swift_coro_dealloc, &ca_CoroType},
    .send = swift_coro_send,
    .throw_ = swift_coro_throw,
    .close = swift_coro_close,
};

cas_coro *cas_coro_new(const char *name, const char *file, int32_t line) {
    cas_coro *c = ca_small_alloc(sizeof *c);
    if (c == NULL) return NULL;
    memset(c, 0, sizeof *c);
    c->co.ob_base.ob_refcnt = 1;
    c->co.ob_base.ob_type = &cas_SwiftCoroType.base;
    c->co.co_name = name;
    c->co.co_filename = file;
    c->co.co_firstlineno = line;
    c->co.co_state = CA_CORO_CREATED;
    c->phase = CAS_PHASE_NOT_STARTED;
    c->resume_value = ca_none();
    c->result = ca_none();
    return c;
}

static void swift_coro_dealloc(ca_object *op) {
    cas_coro *c = (cas_coro *)op;
    /* The Swift task holds a reference until its body is over, so a coroutine
     * dies only once its body is done or never started. */
    if (c->co.co_awaiting != NULL) {
        ca_coro *inner = c->co.co_awaiting;
        c->co.co_awaiting = NULL;
        ca_coro_close(inner);
        ca_decref(inner);
    }
    CA_CLEAR(c->awaited);
    CA_CLEAR(c->foreign);
    CA_CLEAR(c->resume_exc);
    CA_CLEAR(c->pending_exc);
    CA_CLEAR(c->error);
    ca_value_clear(&c->resume_value);
    ca_value_clear(&c->result);
    ca_small_free(c, sizeof *c);
}

/* MARK: - Futures */

const ca_future_type cas_SwiftSuspensionType = {
    .ft_base = {"SwiftSuspension", sizeof(ca_future), NULL, &ca_FutureType},
    .ft_cancel = NULL,
};

ca_future *cas_suspension_new(ca_loop *loop) {
    ca_future *f = ca_future_new(loop);
    /* Same layout and deallocation as a Future; only the name differs, so
     * reprs and the inspector show what the task waits for. */
    if (f != NULL) f->ob_base.ob_type = &cas_SwiftSuspensionType.ft_base;
    return f;
}

/* MARK: - Boxes */

static void box_dealloc(ca_object *op) {
    cas_box *b = (cas_box *)op;
    swift_release(b->object);
    ca_free(b);
}

const ca_type cas_BoxType = {"SwiftValue", sizeof(cas_box), box_dealloc, NULL};

cas_box *cas_box_new(void *object, const void *tag) {
    cas_box *b = ca_malloc(sizeof *b);
    if (b == NULL) {
        swift_release(object);
        return NULL;
    }
    b->ob_base.ob_refcnt = 1;
    b->ob_base.ob_type = &cas_BoxType;
    b->object = object;
    b->tag = tag;
    return b;
}

/* MARK: - Errors */

CA_DEFINE_ERROR_TYPE(cas_SwiftError, "SwiftError", ca_Exception);
CA_DEFINE_ERROR_TYPE(cas_GeneratorExit, "GeneratorExit", ca_BaseException);

static void payload_release(void *p) { swift_release(p); }

void cas_error_set_swift_payload(ca_error *err, void *payload) {
    ca_value_clear(&err->payload);
    err->payload = ca_ptr(payload, payload_release);
}

void *cas_error_swift_payload(const ca_error *err) {
    if (err == NULL || err->payload.kind != CA_VALUE_PTR || err->payload.u.ptr.dtor != payload_release) return NULL;
    return err->payload.u.ptr.p;
}

const ca_error_type *cas_error_type_named(const char *name) {
    static const ca_error_type *const builtins[] = {
        &ca_BaseException, &ca_Exception, &ca_CancelledError, &ca_KeyboardInterrupt, &ca_SystemExit,
        &ca_BaseExceptionGroup, &ca_ExceptionGroup, &ca_StopIteration, &ca_RuntimeError, &ca_RecursionError,
        &ca_ValueError, &ca_TypeError, &ca_KeyError, &ca_MemoryError, &ca_OSError, &ca_TimeoutError,
        &ca_ConnectionError, &ca_BrokenPipeError, &ca_ConnectionResetError, &ca_ConnectionRefusedError,
        &ca_ConnectionAbortedError, &ca_InvalidStateError, &ca_QueueEmpty, &ca_QueueFull, &ca_QueueShutDown,
        &ca_BrokenBarrierError, &ca_IncompleteReadError, &ca_LimitOverrunError, &ca_EOFError,
        &ca_StopAsyncIteration, &cas_SwiftError, &cas_GeneratorExit,
    };
    if (name == NULL) return NULL;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strcmp(builtins[i]->name, name) == 0) return builtins[i];
    return NULL;
}
