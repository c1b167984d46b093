/*
 * cconformance.h — the `c` engine of asyncio-conformance: executes one
 * scenario of the conformance corpus (../shared/conformance/SPEC.md) on the
 * C core under the loop's virtual clock and produces its trace.
 *
 * Every scenario body is a coroutine of the core's protocol (send, throw,
 * close) that interprets the scenario's ops and yields to its task wherever
 * the asyncio operation it performs suspends, so the core is driven directly.
 * Runs are independent: one run owns its loop, any thread may run one, and
 * several threads may run scenarios at the same time.
 */
#ifndef CCONFORMANCE_H
#define CCONFORMANCE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The runner's exit statuses (README.md, "Writing a runner"). */
typedef enum cconf_status {
    CCONF_OK = 0,      /* the trace was produced */
    CCONF_INVALID = 2, /* the scenario is invalid, or the run failed */
    CCONF_SKIPPED = 3, /* the scenario requires a feature the core lacks */
} cconf_status;

/** What a run produced. Release with cconf_outcome_free. */
typedef struct cconf_outcome {
    int status;        /* a cconf_status */
    char *trace;       /* the trace text (NUL-terminated, never NULL; partial unless OK) */
    size_t trace_len;
    char *message;     /* a diagnostic line for stderr, or NULL */
} cconf_outcome;

/** Runs the scenario held in `text` (JSON, `len` bytes). Returns out->status. */
int cconf_run_json(const char *text, size_t len, cconf_outcome *out);

/**
 * Checks the scenario held in `text` without running it: the JSON reader and
 * the validator of the `c` engine (SPEC 1, 2.5 and 5), shared with the
 * `swift` engine. Returns out->status: CCONF_OK or CCONF_INVALID (with a
 * message); the trace is empty.
 */
int cconf_check_json(const char *text, size_t len, cconf_outcome *out);

/** Reads the scenario file at `path` and runs it. Returns out->status. */
int cconf_run_file(const char *path, cconf_outcome *out);

/** Releases what an outcome owns. */
void cconf_outcome_free(cconf_outcome *out);

#ifdef __cplusplus
}
#endif
#endif
