/*
 * error.h — error objects: a type with a parent (for "isinstance"), an
 * optional message, an errno for OSError, and the cause/context chain.
 *
 * Every fallible core function returns `ca_error *`: NULL on success, else a
 * NEW reference the caller owns and must ca_decref (or pass on).
 */
#ifndef CASYNCIO_ERROR_H
#define CASYNCIO_ERROR_H

#include "object.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An error type. Static, compared by address; `base` gives the hierarchy. */
typedef struct ca_error_type {
    const char *name;                  /* "CancelledError", "MyError", ... */
    const struct ca_error_type *base;  /* NULL only for BaseException */
} ca_error_type;

/** Declares a user-defined error type deriving from `parent`. */
#define CA_DEFINE_ERROR_TYPE(ident, display_name, parent) \
    const ca_error_type ident = {display_name, &(parent)}

/* The built-in hierarchy mirrors Python's: */
extern const ca_error_type ca_BaseException;
extern const ca_error_type ca_Exception;          /* < BaseException */
extern const ca_error_type ca_CancelledError;     /* < BaseException (asyncio.CancelledError) */
extern const ca_error_type ca_KeyboardInterrupt;  /* < BaseException */
extern const ca_error_type ca_SystemExit;         /* < BaseException */
extern const ca_error_type ca_BaseExceptionGroup; /* < BaseException */
extern const ca_error_type ca_ExceptionGroup;     /* < BaseExceptionGroup (and Exception) */
extern const ca_error_type ca_StopIteration;      /* < Exception */
extern const ca_error_type ca_RuntimeError;       /* < Exception */
extern const ca_error_type ca_RecursionError;     /* < RuntimeError */
extern const ca_error_type ca_ValueError;         /* < Exception */
extern const ca_error_type ca_TypeError;          /* < Exception */
extern const ca_error_type ca_KeyError;           /* < Exception */
extern const ca_error_type ca_MemoryError;        /* < Exception */
extern const ca_error_type ca_OSError;            /* < Exception; carries errno */
extern const ca_error_type ca_TimeoutError;       /* < OSError (asyncio.TimeoutError is the builtin) */
extern const ca_error_type ca_ConnectionError;    /* < OSError */
extern const ca_error_type ca_BrokenPipeError;         /* < ConnectionError */
extern const ca_error_type ca_ConnectionResetError;    /* < ConnectionError */
extern const ca_error_type ca_ConnectionRefusedError;  /* < ConnectionError */
extern const ca_error_type ca_ConnectionAbortedError;  /* < ConnectionError */
extern const ca_error_type ca_InvalidStateError;  /* < Exception (asyncio.InvalidStateError) */
extern const ca_error_type ca_QueueEmpty;         /* < Exception */
extern const ca_error_type ca_QueueFull;          /* < Exception */
extern const ca_error_type ca_QueueShutDown;      /* < Exception */
extern const ca_error_type ca_BrokenBarrierError; /* < RuntimeError */
extern const ca_error_type ca_IncompleteReadError; /* < EOFError < Exception */
extern const ca_error_type ca_LimitOverrunError;  /* < Exception */
extern const ca_error_type ca_EOFError;           /* < Exception */

extern const ca_type ca_ErrorType; /* the object type of every ca_error */

/** An error instance. Refcounted; fields are read-only after creation
 *  except the chain setters below. */
typedef struct ca_error {
    ca_object ob_base;
    const ca_error_type *type;
    char *message;              /* owned; NULL = no arguments (CancelledError()) */
    int err_no;                 /* OSError family: errno, else 0 */
    struct ca_error *cause;     /* __cause__ (owned) */
    struct ca_error *context;   /* __context__ (owned) */
    bool suppress_context;      /* set by "raise X from Y" */
    struct ca_error **children; /* exception groups: owned array of owned errors */
    size_t nchildren;
    ca_value payload;           /* owned user payload (the Swift layer boxes its errors here) */
} ca_error;

/**
 * Creates an error of `type` with a copy of `message` (NULL: no message).
 * Returns a new reference; on allocation failure returns the preallocated
 * MemoryError singleton (also a reference to own). Never NULL.
 */
ca_error *ca_error_new(const ca_error_type *type, const char *message);

/** Like ca_error_new with a printf-style message. */
ca_error *ca_error_format(const ca_error_type *type, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/** An OSError-family error carrying `err_no`, with Python's message form:
 *  "[Errno N] strerror" or, with `message`, "[Errno N] strerror: message". */
ca_error *ca_error_from_errno(const ca_error_type *type, int err_no, const char *message);

/**
 * An exception group holding `n` errors (each reference is copied, the array
 * is not taken). The type is ExceptionGroup when every child is an Exception,
 * else BaseExceptionGroup, as Python's BaseExceptionGroup() chooses.
 */
ca_error *ca_error_group_new(const char *message, ca_error *const *errors, size_t n);

/** True when `err`'s type is `type` or derives from it. NULL err gives false. */
bool ca_error_matches(const ca_error *err, const ca_error_type *type);

/** True when `type` is `base` or derives from it. */
bool ca_error_type_is_subtype(const ca_error_type *type, const ca_error_type *base);

/** Sets err->cause (new reference taken, old released) and suppress_context. */
void ca_error_set_cause(ca_error *err, ca_error *cause);

/**
 * Sets err->context to `context` (a new reference is taken, the old one
 * released) unless that would create a cycle, which Python also refuses:
 * any link of `context`'s chain that is `err` is cut first.
 */
void ca_error_set_context(ca_error *err, ca_error *context);

/** The message, or "" when the error has none. Borrowed. */
const char *ca_error_message(const ca_error *err);

/**
 * Writes "Type: message" (or "Type" without a message) into buf (always
 * NUL-terminated when size > 0). Returns the length that was needed.
 */
size_t ca_error_describe(const ca_error *err, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
