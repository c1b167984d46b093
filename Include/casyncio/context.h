/*
 * context.h — contextvars: a Context maps ContextVars to values through a
 * persistent (copy-on-write, structurally shared) map, so copying a context
 * is O(1) and setting a variable never disturbs other copies.
 *
 * Each thread has a current context. The loop makes a handle's context
 * current while its callback runs; a task's context while its steps run.
 */
#ifndef CASYNCIO_CONTEXT_H
#define CASYNCIO_CONTEXT_H

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ca_context ca_context;

/**
 * A context variable. Define one statically (or allocate and keep it alive
 * for as long as any context may hold it): its address is its identity.
 */
typedef struct ca_contextvar {
    const char *name;
    ca_value default_value;  /* NONE with has_default false: no default */
    bool has_default;
} ca_contextvar;

/** A token returned by ca_contextvar_set, consumed by ca_contextvar_reset. */
typedef struct ca_contextvar_token {
    ca_context *context;        /* the context the set happened in (owned) */
    const ca_contextvar *var;
    ca_value old_value;         /* owned copy */
    bool had_old_value;
    bool used;
} ca_contextvar_token;

extern const ca_type ca_ContextType;

/** A new empty context (new reference; NULL only on allocation failure). */
ca_context *ca_context_new(void);

/** copy_context(): a new context sharing the current one's map. New reference. */
ca_context *ca_context_copy_current(void);

/** A new context sharing `ctx`'s map. New reference. */
ca_context *ca_context_copy(ca_context *ctx);

/** The calling thread's current context (borrowed; created lazily, never NULL
 *  unless allocation fails). */
ca_context *ca_context_current(void);

/**
 * Makes `ctx` current (Context.run's entry). Returns a RuntimeError if `ctx`
 * is already entered ("cannot enter context: ... is already entered").
 */
ca_error *ca_context_enter(ca_context *ctx);

/** Restores the context that was current before the matching enter. */
void ca_context_exit(ca_context *ctx);

/**
 * ContextVar.get(): stores a copy of the value in *out (caller owns it).
 * If the variable is unset in the current context, uses `fallback` when not
 * NULL, else the variable's default; with neither, returns a KeyError
 * (LookupError in Python) and leaves *out NONE.
 */
ca_error *ca_contextvar_get(const ca_contextvar *var, const ca_value *fallback, ca_value *out);

/**
 * ContextVar.set(): takes `value` and binds it in the current context.
 * When `token` is not NULL it is filled so ca_contextvar_reset can undo the
 * set (release it with ca_contextvar_token_clear if never reset).
 */
ca_error *ca_contextvar_set(const ca_contextvar *var, ca_value value, ca_contextvar_token *token);

/**
 * ContextVar.reset(): restores the binding captured in `token`. RuntimeError
 * if the token was already used; ValueError if it was created in another
 * context or by another variable.
 */
ca_error *ca_contextvar_reset(const ca_contextvar *var, ca_contextvar_token *token);

/** Releases what a token owns without resetting. */
void ca_contextvar_token_clear(ca_contextvar_token *token);

/** Number of variables bound in `ctx`. */
size_t ca_context_len(const ca_context *ctx);

#ifdef __cplusplus
}
#endif
#endif
