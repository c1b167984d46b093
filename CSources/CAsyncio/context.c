/*
 * context.c — contextvars on a persistent map.
 *
 * The map is an immutable, refcounted array sorted by variable address:
 * copying a context shares it, setting a variable builds a new array. Real
 * programs bind a handful of variables, where a flat array beats a HAMT.
 */
#include "internal.h"

#include <string.h>

typedef struct ctx_item {
    const ca_contextvar *var;
    ca_value value;
} ctx_item;

struct ca_ctxmap {
    intptr_t refcnt;
    size_t len;
    ctx_item items[];
};

const ca_type ca_ContextType = {"Context", sizeof(ca_context), ca_context_dealloc, NULL};

/* MARK: - Maps */

static size_t map_size(size_t len) { return sizeof(ca_ctxmap) + len * sizeof(ctx_item); }

static void map_decref(ca_ctxmap *m) {
    if (m == NULL || --m->refcnt > 0) return;
    for (size_t i = 0; i < m->len; i++) ca_value_clear(&m->items[i].value);
    ca_small_free(m, map_size(m->len));
}

static ca_ctxmap *map_incref(ca_ctxmap *m) {
    if (m != NULL) m->refcnt++;
    return m;
}

static ptrdiff_t map_find(const ca_ctxmap *m, const ca_contextvar *var, size_t *insert_at) {
    size_t lo = 0, hi = m ? m->len : 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)m->items[mid].var < (uintptr_t)var) lo = mid + 1;
        else hi = mid;
    }
    if (insert_at) *insert_at = lo;
    if (m != NULL && lo < m->len && m->items[lo].var == var) return (ptrdiff_t)lo;
    return -1;
}

/* A new map equal to `m` with var bound to `value` (taken). NULL: memory. */
static ca_ctxmap *map_set(const ca_ctxmap *m, const ca_contextvar *var, ca_value value) {
    size_t at;
    ptrdiff_t found = map_find(m, var, &at);
    size_t old_len = m ? m->len : 0;
    size_t len = found >= 0 ? old_len : old_len + 1;
    ca_ctxmap *n = ca_small_alloc(map_size(len));
    if (n == NULL) {
        ca_value_clear(&value);
        return NULL;
    }
    n->refcnt = 1;
    n->len = len;
    size_t j = 0;
    for (size_t i = 0; i < old_len; i++) {
        if ((ptrdiff_t)i == found) continue;
        if (found < 0 && i == at) j++;
        n->items[j++] = (ctx_item){m->items[i].var, ca_value_copy(&m->items[i].value)};
    }
    size_t pos = found >= 0 ? (size_t)found : at;
    if (found >= 0) {
        /* the loop skipped `found`, shift the tail right by one slot */
        memmove(&n->items[pos + 1], &n->items[pos], (len - pos - 1) * sizeof(ctx_item));
    }
    n->items[pos] = (ctx_item){var, value};
    return n;
}

/* A new map equal to `m` without var (NULL when that leaves it empty). */
static ca_ctxmap *map_delete(const ca_ctxmap *m, const ca_contextvar *var, bool *oom) {
    *oom = false;
    ptrdiff_t found = map_find(m, var, NULL);
    if (found < 0) return map_incref((ca_ctxmap *)m);
    if (m->len == 1) return NULL;
    ca_ctxmap *n = ca_small_alloc(map_size(m->len - 1));
    if (n == NULL) {
        *oom = true;
        return NULL;
    }
    n->refcnt = 1;
    n->len = m->len - 1;
    for (size_t i = 0, j = 0; i < m->len; i++)
        if ((ptrdiff_t)i != found) n->items[j++] = (ctx_item){m->items[i].var, ca_value_copy(&m->items[i].value)};
    return n;
}

/* MARK: - Contexts */

static inline ca_context *context_alloc(ca_ctxmap *map_taken) {
    ca_context *c = ca_small_alloc(sizeof(ca_context));
    if (c == NULL) {
        map_decref(map_taken);
        return NULL;
    }
    ca_object_init(c, &ca_ContextType);
    c->map = map_taken;
    c->prev = NULL;
    c->entered = false;
    return c;
}

void ca_context_dealloc(ca_object *op) {
    ca_context *c = (ca_context *)op;
    map_decref(c->map);
    ca_small_free(c, sizeof(ca_context));
}

ca_context *ca_context_new(void) { return context_alloc(NULL); }

ca_context *ca_context_current(void) {
    ca_tstate *ts = ca_tstate_get();
    if (ts->context == NULL) {
        if (ts->base_context == NULL) ts->base_context = context_alloc(NULL);
        ts->context = ts->base_context;
    }
    return ts->context;
}

ca_context *ca_context_copy(ca_context *ctx) { return context_alloc(map_incref(ctx->map)); }

ca_context *ca_context_copy_current(void) {
    ca_context *cur = ca_ts.context;
    if (CA_UNLIKELY(cur == NULL)) cur = ca_context_current();
    return cur ? context_alloc(map_incref(cur->map)) : NULL;
}


size_t ca_context_len(const ca_context *ctx) { return ctx->map ? ctx->map->len : 0; }

ca_error *ca_context_enter(ca_context *ctx) {
    if (ctx->entered)
        return ca_error_format(&ca_RuntimeError, "cannot enter context: <Context object at %p> is already entered",
                               (void *)ctx);
    ca_tstate *ts = ca_tstate_get();
    ctx->prev = ts->context;
    ctx->entered = true;
    ts->context = ctx;
    return NULL;
}

void ca_context_exit(ca_context *ctx) {
    ca_tstate *ts = ca_tstate_get();
    if (!ctx->entered || ts->context != ctx) return;
    ts->context = ctx->prev;
    ctx->prev = NULL;
    ctx->entered = false;
}

ca_context *ca_context_enter_for_callback_slow(ca_context *ctx) {
    ca_tstate *ts = ca_tstate_get();
    if (ctx == NULL) {
        /* A private copy of an empty context. One scratch object per thread
         * serves every such callback; if a callback kept a reference to it
         * (a token, a copy) it is handed over and a fresh one made. */
        ctx = ts->scratch_context;
        if (ctx != NULL && ctx->entered) return NULL; /* nested run: stay in the current one */
        if (ctx != NULL && ctx->ob_base.ob_refcnt != 1) CA_CLEAR(ts->scratch_context);
        if (ts->scratch_context == NULL) {
            ts->scratch_context = context_alloc(NULL);
            if (ts->scratch_context == NULL) return NULL;
        }
        ctx = ts->scratch_context;
        if (ctx->map != NULL) {
            map_decref(ctx->map);
            ctx->map = NULL;
        }
    } else if (ctx->entered) {
        return NULL;
    }
    ctx->prev = ts->context;
    ctx->entered = true;
    ts->context = ctx;
    return ctx;
}

/** Releases the calling thread's contexts (thread exit). */
void ca_context_thread_release(void) {
    ca_tstate *ts = &ca_ts;
    ts->context = NULL;
    CA_CLEAR(ts->scratch_context);
    CA_CLEAR(ts->base_context);
}

/* MARK: - Context variables */

ca_error *ca_contextvar_get(const ca_contextvar *var, const ca_value *fallback, ca_value *out) {
    *out = ca_none();
    ca_context *cur = ca_context_current();
    ptrdiff_t i = cur ? map_find(cur->map, var, NULL) : -1;
    if (i >= 0) {
        *out = ca_value_copy(&cur->map->items[i].value);
        return NULL;
    }
    if (fallback != NULL) {
        *out = ca_value_copy(fallback);
        return NULL;
    }
    if (var->has_default) {
        *out = ca_value_copy(&var->default_value);
        return NULL;
    }
    return ca_error_format(&ca_KeyError, "<ContextVar name='%s'>", var->name ? var->name : "?");
}

ca_error *ca_contextvar_set(const ca_contextvar *var, ca_value value, ca_contextvar_token *token) {
    ca_context *cur = ca_context_current();
    if (cur == NULL) {
        ca_value_clear(&value);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    if (token != NULL) {
        memset(token, 0, sizeof *token);
        ptrdiff_t i = map_find(cur->map, var, NULL);
        token->had_old_value = i >= 0;
        if (i >= 0) token->old_value = ca_value_copy(&cur->map->items[i].value);
        token->context = ca_incref(cur);
        token->var = var;
    }
    ca_ctxmap *n = map_set(cur->map, var, value);
    if (n == NULL) {
        if (token) ca_contextvar_token_clear(token);
        return ca_error_new(&ca_MemoryError, NULL);
    }
    map_decref(cur->map);
    cur->map = n;
    return NULL;
}

ca_error *ca_contextvar_reset(const ca_contextvar *var, ca_contextvar_token *token) {
    if (token->used) return ca_error_new(&ca_RuntimeError, "Token has already been used once");
    if (token->var != var) return ca_error_format(&ca_ValueError, "<Token> was created by a different ContextVar");
    ca_context *cur = ca_context_current();
    if (token->context != cur) return ca_error_format(&ca_ValueError, "<Token> was created in a different Context");
    ca_ctxmap *n;
    if (token->had_old_value) {
        n = map_set(cur->map, var, ca_value_copy(&token->old_value));
        if (n == NULL) return ca_error_new(&ca_MemoryError, NULL);
    } else {
        bool oom;
        n = map_delete(cur->map, var, &oom);
        if (oom) return ca_error_new(&ca_MemoryError, NULL);
    }
    map_decref(cur->map);
    cur->map = n;
    token->used = true;
    ca_value_clear(&token->old_value);
    CA_CLEAR(token->context);
    return NULL;
}

void ca_contextvar_token_clear(ca_contextvar_token *token) {
    ca_value_clear(&token->old_value);
    CA_CLEAR(token->context);
}
