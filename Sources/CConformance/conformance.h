/*
 * conformance.h — the parts of the `c` engine: the JSON reader (json.c), the
 * scenario compiler and validator (scenario.c), a run's objects, names and
 * trace (run.c), and the body coroutine that interprets ops (interp.c).
 *
 * The reference is ../shared/conformance/reference_runner.py; names follow
 * it (declare, lookup, name_of, state_of, fmt_val, fmt_err) so the two read
 * side by side.
 */
#ifndef CONFORMANCE_H
#define CONFORMANCE_H

#include <casyncio/casyncio.h>

#include "cconformance.h"

/* MARK: - Text buffers */

typedef struct sbuf {
    char *p;   /* NUL-terminated once anything was written */
    size_t len;
    size_t cap;
} sbuf;

void sb_putn(sbuf *sb, const char *s, size_t n);
void sb_puts(sbuf *sb, const char *s);
void sb_printf(sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Takes the text out of the buffer (never NULL) and resets it. */
char *sb_take(sbuf *sb);

/* MARK: - JSON */

typedef enum jv_kind { JV_NULL, JV_BOOL, JV_INT, JV_NUM, JV_STR, JV_LIST, JV_OBJ } jv_kind;

/**
 * A JSON value. Scenario values (null aside) travel through the core as
 * OBJECT values pointing at these nodes, so every node is an immortal core
 * object: the core may take and drop references, the tree frees it.
 */
typedef struct jv {
    ca_object ob_base;
    uint8_t kind;       /* jv_kind */
    bool b;             /* BOOL */
    int64_t i;          /* INT */
    char *s;            /* STR: NUL-terminated UTF-8 */
    size_t len;         /* STR: bytes; LIST, OBJ: entries */
    struct jv **items;  /* LIST items, OBJ values */
    char **keys;        /* OBJ keys, in file order */
} jv;

extern const ca_type cconf_ValueType;

/** Parses `text`; NULL with a message in `err` when it is not JSON. */
jv *jv_parse(const char *text, size_t len, char *err, size_t errsize);
void jv_free(jv *v);
/** The member `key` of an object (the last one when repeated), or NULL. */
const jv *jv_get(const jv *obj, const char *key);

/* MARK: - Scenarios */

typedef enum opcode {
    /* declarations */
    OP_FUTURE, OP_SPAWN, OP_CORO, OP_GATHER, OP_SHIELD, OP_WAIT_FOR, OP_WAIT, OP_LOCK, OP_EVENT,
    OP_CONDITION, OP_SEMAPHORE, OP_BOUNDED_SEMAPHORE, OP_QUEUE, OP_CALL_SOON, OP_CALL_LATER,
    OP_CALL_AT, OP_ADD_DONE_CALLBACK,
    /* synchronous operations */
    OP_SET_RESULT, OP_SET_EXCEPTION, OP_CANCEL, OP_UNCANCEL, OP_CANCELLING, OP_DONE, OP_CANCELLED,
    OP_RESULT, OP_EXCEPTION, OP_GET_NAME, OP_REMOVE_DONE_CALLBACK, OP_CURRENT_TASK, OP_ALL_TASKS,
    OP_RELEASE, OP_LOCKED, OP_EVENT_SET, OP_EVENT_CLEAR, OP_IS_SET, OP_NOTIFY, OP_NOTIFY_ALL,
    OP_PUT_NOWAIT, OP_GET_NOWAIT, OP_TASK_DONE, OP_QSIZE, OP_EMPTY, OP_FULL, OP_SHUTDOWN,
    OP_RESCHEDULE, OP_WHEN, OP_EXPIRED,
    /* suspending operations */
    OP_AWAIT, OP_SLEEP, OP_ACQUIRE, OP_EVENT_WAIT, OP_COND_WAIT, OP_PUT, OP_GET, OP_JOIN,
    /* blocks */
    OP_TRY, OP_TIMEOUT, OP_TASKGROUP, OP_WITH, OP_REPEAT,
    /* control */
    OP_LOG, OP_RETURN, OP_RAISE, OP_RERAISE,
    OP_COUNT_
} opcode;

/** Op fields (section 5 of SPEC.md); one slot each in op.f. */
typedef enum field {
    F_ID, F_TARGET, F_CB, F_ITEM, F_ITEMS, F_NAME, F_GROUP, F_LOCK, F_ERROR, F_MSG, F_VALUE,
    F_RESULT, F_MS, F_DELAY, F_AT, F_TIMEOUT, F_RETURN_WHEN, F_KIND, F_MAXSIZE, F_N, F_COUNT,
    F_EAGER, F_RETURN_EXCEPTIONS, F_IMMEDIATE, F_BODY, F_EXCEPT, F_FINALLY,
    F_COUNT_
} field;

typedef struct op op;

typedef struct body {
    op *ops;
    size_t n;
} body;

typedef struct handler {
    const ca_error_type **types; /* the names it catches */
    size_t ntypes;
    body body;
} handler;

struct op {
    uint8_t code;               /* opcode */
    const jv *f[F_COUNT_];      /* the fields as written (NULL: absent) */
    int slot[F_COUNT_];         /* ID and reference fields: the id's slot */
    int *items;                 /* F_ITEMS: slots */
    size_t nitems;
    int tag;                    /* F_CB: the callback's index */
    const ca_error_type *error; /* F_ERROR */
    char *msg;                  /* F_MSG rendered as an error argument; NULL when absent */
    char *label;                /* "<op> <target>", "sleep <ms>", or the op name */
    body body;                  /* F_BODY */
    body fin;                   /* F_FINALLY */
    handler *handlers;          /* F_EXCEPT */
    size_t nhandlers;
};

typedef struct cbtag {
    const char *name;
    char *actor;                /* "cb:<tag>" */
    body body;
} cbtag;

typedef struct scenario {
    jv *root;
    body main;
    char **ids;                 /* slot -> id; slot 0 is "main" */
    size_t nids;
    cbtag *tags;
    size_t ntags;
    ca_error_type **user_types; /* one distinct Exception subclass per user error name */
    size_t nuser_types;
} scenario;

/**
 * Checks and compiles a parsed scenario (SPEC 1 and 5; what the reference's
 * validate() refuses). Returns CCONF_OK, or CCONF_INVALID with a message in
 * `err`; never CCONF_SKIPPED, since the core provides both optional features
 * of SPEC 6. The scenario keeps `root`.
 */
int scenario_compile(jv *root, scenario *scn, char *err, size_t errsize);
void scenario_free(scenario *scn);
const char *opcode_name(int code);

/* MARK: - Runs */

typedef enum kind {
    K_NONE, K_FUTURE, K_TASK, K_GATHER, K_SHIELD, K_CORO, K_WAIT_FOR, K_WAIT, K_LOCK, K_EVENT,
    K_CONDITION, K_SEMAPHORE, K_BOUNDED_SEMAPHORE, K_QUEUE, K_HANDLE, K_TIMEOUT, K_TASKGROUP,
} kind;

typedef struct decl {
    uint8_t kind;  /* K_NONE: not declared yet */
    void *obj;     /* owned reference */
} decl;

typedef struct name_entry {
    const void *obj; /* owned reference, NULL: empty */
    int slot;
} name_entry;

typedef struct run {
    scenario *scn;
    ca_loop *loop;
    sbuf out;
    decl *decls;            /* by slot */
    int *summary;           /* slots of the `final` lines, in declaration order */
    size_t nsummary, capsummary;
    name_entry *names;      /* object -> first id declared for it (open addressing) */
    size_t names_used, names_cap;
    ca_task **tasks;        /* every task created, in creation order (owned) */
    size_t ntasks, captasks;
    char *abort_msg;        /* why the run is invalid (NULL: it is not) */
    bool closed;            /* the trace is complete: nothing more is printed */
    bool idle;
    bool near_armed;        /* see run.c, "Idle detection" */
    bool far_armed;
    int64_t last_ns;        /* the clock when our code last ran */
    uint64_t watch_iterations; /* loop iterations the idle watches ran in */
    int64_t idle_ns;
    void *cbrecs;           /* one record per callback tag: the callbacks' argument */
} run;

/** The signals ops and blocks hand back to the interpreter. */
typedef enum sig { S_NEXT, S_RAISE, S_RETURN, S_SUSPEND, S_ABORT } sig;

/** Who executes an op: the actor of a body or a callback. */
typedef struct actx {
    run *r;
    const char *actor;
} actx;

#define KIND_BIT(k) (1u << (k))
#define FUTURE_KINDS (KIND_BIT(K_FUTURE) | KIND_BIT(K_TASK) | KIND_BIT(K_GATHER) | KIND_BIT(K_SHIELD))
#define COROUTINE_KINDS (KIND_BIT(K_CORO) | KIND_BIT(K_WAIT_FOR) | KIND_BIT(K_WAIT))
#define AWAITABLE_KINDS (FUTURE_KINDS | COROUTINE_KINDS)
#define LOCKLIKE_KINDS (KIND_BIT(K_LOCK) | KIND_BIT(K_CONDITION) | KIND_BIT(K_SEMAPHORE) | KIND_BIT(K_BOUNDED_SEMAPHORE))

/* run.c */
/** Records why the run is invalid (the first reason wins) and stops it. */
void run_fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Our code runs: checks the run's limits and arms the idle watch. */
void run_touch(run *r);
/** The object declared in `slot` if its kind is in `kinds` (else the run fails: NULL). */
void *lookup(run *r, int slot, unsigned kinds, uint8_t *kind_out);
/** Declares `slot` as `obj` (reference taken); `summary`: it gets a `final` line. */
void declare(run *r, int slot, uint8_t kind, void *obj, bool summary);
void summary_insert(run *r, size_t at, int slot);
/** Names `obj` by `slot` unless it has a name (keeps a reference). */
void name_add(run *r, const void *obj, int slot);
/** The slot naming `obj`, or -1. */
int name_find(run *r, const void *obj);
ca_done_fn done_callback_fn(void);
ca_callback_fn soon_callback_fn(void);
/** The argument identifying callback `tag` (one function object per tag). */
void *callback_arg(run *r, int tag);

/* trace.c */
void emit(run *r, const char *actor, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void fmt_jv(sbuf *sb, const jv *v);
void fmt_val(run *r, sbuf *sb, const ca_value *v);
void fmt_err(run *r, sbuf *sb, const ca_error *e);
/** The id a future or task is known by (the reference's name_of), or NULL. */
const char *name_of(run *r, const void *obj);
void fmt_ref(run *r, sbuf *sb, const void *fut);
void fmt_task_set(run *r, sbuf *sb, ca_task *const *tasks, size_t n);
void state_of(run *r, sbuf *sb, const ca_future *f);
/** A scenario value as a core value (an immortal reference; null is NONE). */
ca_value jv_value(const jv *v);
/** A new error of the op's `error` with its `msg`. */
ca_error *make_error(const op *o);

/* ops.c: declarations, synchronous ops and `log`, shared by bodies and
 * callbacks; suspending ops, blocks and control are interp.c's. */
sig exec_simple_op(actx *cx, const op *o);
void run_callback_body(run *r, const cbtag *tag);
ca_error *release_lock_like(void *obj, uint8_t kind);
/** Scenario milliseconds as loop nanoseconds (clamped to the core's +-4e18). */
int64_t ms_to_ns(int64_t ms);
int compare_values(const ca_value *a, const ca_value *b, void *arg);

/* interp.c */
ca_coro *interp_new(run *r, const char *actor, const body *b);

#endif
