/*
 * casyncio_inspect.h — reads the tasks of a process that links the C core,
 * from outside: a live process (process_vm_readv, never ptrace: the target
 * is not stopped, attached to or written), a core dump, or an in-memory
 * image (tests). The layout comes from the debug offsets table
 * (Include/casyncio/debug.h, docs/debug-offsets.md); nothing else about the
 * core is assumed.
 *
 * Every walk is bounded (cai_limits) and every pointer read from the target
 * is checked (alignment, object type, list back-links) before it is
 * followed, so torn or foreign memory gives an error, not a crash or a hang.
 */
#ifndef CASYNCIO_INSPECT_H
#define CASYNCIO_INSPECT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Outcomes. Functions that can fail also fill a caller-provided message. */
typedef enum cai_status {
    CAI_OK = 0,
    CAI_ERR_READ = 1,     /* memory the snapshot needed could not be read */
    CAI_ERR_TORN = 2,     /* the structures changed while being read */
    CAI_ERR_FORMAT = 3,   /* no valid table, or an unsupported version */
    CAI_ERR_CORRUPT = 4,  /* a pointer led to something that is not what it should be */
    CAI_ERR_LIMIT = 5,    /* a bound of cai_limits was reached */
    CAI_ERR_NOMEM = 6,
    CAI_ERR_NOTFOUND = 7, /* no mapped binary carries the section */
    CAI_ERR_PERM = 8,     /* the kernel refused to let us read the process */
    CAI_ERR_SYS = 9,      /* another system error (no such process, bad file, ...) */
} cai_status;

/** Where memory comes from, with a page cache in front. */
typedef struct cai_reader cai_reader;

/** Reads `len` bytes at `addr` of the target into `buf`; 0 on success,
 *  an errno value when any byte is unreadable. Used by custom sources. */
typedef int (*cai_read_fn)(void *ctx, uint64_t addr, void *buf, size_t len);

/** A live process. Nothing is read yet; fails (CAI_ERR_SYS) only when the
 *  process does not exist. */
cai_status cai_reader_open_pid(int pid, cai_reader **out, char *err, size_t errlen);

/** A core dump. `exe` (may be NULL) replaces the main binary's path found in
 *  the core's file notes, for files that moved or changed since. */
cai_status cai_reader_open_core(const char *core_path, const char *exe_path, cai_reader **out,
                                char *err, size_t errlen);

/** A custom source (tests). `live` makes snapshots re-check the registry
 *  generation and retry like for a live process. */
cai_status cai_reader_open_custom(cai_read_fn fn, void *ctx, int live, cai_reader **out);

void cai_reader_close(cai_reader *r);

/** Drops the page cache: the next reads see the target's current memory. */
void cai_reader_invalidate(cai_reader *r);

/** Pages fetched from the source since the reader was opened. */
uint64_t cai_reader_page_fetches(const cai_reader *r);

/** Reads through the cache (0 / errno), for tools built on the reader. */
int cai_reader_read(cai_reader *r, uint64_t addr, void *buf, size_t len);

/* MARK: - Images (in-memory targets for tests) */

/** A set of pages standing for a target's memory. */
typedef struct cai_image cai_image;

cai_image *cai_image_new(void);
void cai_image_free(cai_image *img);
/** Adds (or replaces) bytes at `addr`; pages not added are unreadable. */
int cai_image_add(cai_image *img, uint64_t addr, const void *bytes, size_t len);
/** A deep copy (NULL when out of memory). */
cai_image *cai_image_clone(const cai_image *img);
/** Number of pages and their addresses/bytes (for mutation by tests). */
size_t cai_image_page_count(const cai_image *img);
uint64_t cai_image_page_addr(const cai_image *img, size_t i);
uint8_t *cai_image_page_bytes(cai_image *img, size_t i);
/** Removes page `i` (it becomes unreadable). */
void cai_image_drop_page(cai_image *img, size_t i);
/** A reader over the image (the image must outlive it). */
cai_status cai_reader_open_image(cai_image *img, cai_reader **out);
/** Makes `r` copy every page it fetches into `img` (NULL stops). */
void cai_reader_record(cai_reader *r, cai_image *img);

/* MARK: - Finding the table */

/**
 * Finds CA_DEBUG_SECTION in the binaries mapped by the target (the main
 * executable and every shared object: /proc/PID/maps for a live process, the
 * NT_FILE note of a core) and stores the table addresses (up to `cap`) in
 * `out`; *count receives how many were found. CAI_ERR_NOTFOUND when none.
 */
cai_status cai_find_tables(cai_reader *r, uint64_t *out, size_t cap, size_t *count, char *err,
                           size_t errlen);

/* MARK: - Snapshots */

typedef struct cai_limits {
    uint32_t max_threads;   /* registered threads */
    uint32_t max_loops;     /* registered loops */
    uint32_t max_tasks;     /* tasks over all lists */
    uint32_t max_depth;     /* coroutines in one await chain */
    uint32_t max_awaiters;  /* slots of one awaited_by set */
    uint32_t max_string;    /* bytes of one name or file name */
    uint32_t retries;       /* attempts on a live target before giving up */
} cai_limits;

/** 4096 threads and loops, 1,048,576 tasks, chains of 1024, sets of 65536
 *  slots, strings of 1024 bytes, 8 attempts. */
cai_limits cai_default_limits(void);

/** A frame of a coroutine stack. Strings are offsets into the snapshot's
 *  string pool (CAI_NO_STRING: none). */
#define CAI_NO_STRING UINT32_MAX
typedef struct cai_frame {
    uint32_t name;
    uint32_t filename;
    int32_t lineno;
} cai_frame;

/** Who awaits a task: a task (with its own coroutine stack) or a future. */
typedef struct cai_awaiter {
    uint64_t addr;
    uint32_t frames_start;  /* innermost first, into cai_snapshot.frames */
    uint32_t frames_len;
    uint8_t is_task;
} cai_awaiter;

typedef struct cai_task {
    uint64_t addr;
    uint64_t thread_id;     /* the thread whose list holds it; 0: orphaned */
    uint64_t loop;
    uint64_t coro;
    uint64_t fut_waiter;
    uint64_t name_id;
    uint32_t name;          /* string offset ("Task-N" when the task has no name yet) */
    uint32_t frames_start;  /* innermost first */
    uint32_t frames_len;
    uint32_t awaiters_start;
    uint32_t awaiters_len;
    int32_t cancel_requests;
    uint8_t state;          /* 0 pending, 1 cancelled, 2 finished */
    uint8_t must_cancel;
    uint8_t running;        /* its thread's running task */
} cai_task;

typedef struct cai_thread {
    uint64_t tstate;        /* 0 for the orphan list */
    uint64_t thread_id;
    uint64_t running_loop;
    uint64_t running_task;
    uint32_t tasks_start;
    uint32_t tasks_len;
} cai_thread;

typedef struct cai_loop {
    uint64_t addr;
    uint64_t thread_id;
    uint64_t current_task;
    uint64_t ready;
    uint64_t timers;
    uint64_t iterations;
    uint32_t backend;       /* string offset */
    uint8_t running;
    uint8_t closed;
    uint8_t debug;
} cai_loop;

/** One consistent view of one copy of the core. */
typedef struct cai_snapshot {
    uint64_t table_addr;
    uint32_t version;
    cai_thread *threads;    /* registration order, then the orphans (tstate 0) if any */
    size_t nthreads;
    cai_task *tasks;
    size_t ntasks;
    cai_frame *frames;
    size_t nframes;
    cai_awaiter *awaiters;
    size_t nawaiters;
    cai_loop *loops;
    size_t nloops;
    char *strings;
    size_t strings_len;
    uint32_t attempts;      /* reads it took to get a consistent view */
} cai_snapshot;

/**
 * Reads every thread's tasks, their coroutine stacks and awaiters, and the
 * loops, from the table at `table_addr` (NULL limits: the defaults). On a
 * live target a torn view is retried up to `retries` times with a fresh
 * cache. Returns a snapshot to free with cai_snapshot_free in *out.
 */
cai_status cai_snapshot_take(cai_reader *r, uint64_t table_addr, const cai_limits *limits,
                             cai_snapshot **out, char *err, size_t errlen);

void cai_snapshot_free(cai_snapshot *s);

/** The string at `offset` of the pool ("" for CAI_NO_STRING). */
const char *cai_snapshot_string(const cai_snapshot *s, uint32_t offset);

/** A short name for a status ("read error", "torn", ...). */
const char *cai_status_name(cai_status st);

#ifdef __cplusplus
}
#endif
#endif
