/*
 * inspect_internal.h — what the reader's files share: the source seam, the
 * page cache and the mapped-file list both table finders use.
 */
#ifndef CASYNCIO_INSPECT_INTERNAL_H
#define CASYNCIO_INSPECT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "casyncio_inspect.h"

#define CAI_PAGE_SIZE 4096u
#define CAI_PAGE_MASK ((uint64_t)CAI_PAGE_SIZE - 1)

/** A mapping of a file into the target (from /proc/PID/maps or NT_FILE). */
typedef struct cai_mapping {
    uint64_t start;
    uint64_t end;
    uint64_t offset;   /* file offset of `start` */
    char *path;        /* as the target knows it */
} cai_mapping;

/** A source: fetches one page (CAI_PAGE_SIZE bytes at a page address). */
typedef struct cai_source_ops {
    int (*fetch)(cai_reader *r, uint64_t page_addr, uint8_t *buf); /* 0 or errno */
    /** The target's file mappings (for cai_find_tables); may be NULL. */
    cai_status (*mappings)(cai_reader *r, cai_mapping **out, size_t *n, char *err, size_t errlen);
    /** Opens the file behind mapping `m` for reading; -1 when unavailable. */
    int (*open_mapped)(cai_reader *r, const cai_mapping *m);
    void (*close)(cai_reader *r);
} cai_source_ops;

typedef struct cai_page_slot {
    uint64_t page;     /* page address + 1; 0: empty slot */
    uint32_t index;    /* into pages[], or UINT32_MAX for an unreadable page */
    int error;
} cai_page_slot;

struct cai_reader {
    const cai_source_ops *ops;
    bool live;
    /* source state */
    int pid;
    void *core;        /* cai_core *, for core dumps */
    cai_read_fn custom_fn;
    void *custom_ctx;
    cai_image *image;
    /* page cache: open addressing on the page address */
    cai_page_slot *slots;
    size_t nslots;     /* power of two */
    size_t used;
    uint8_t **chunks;  /* page storage, 64 pages per chunk */
    size_t nchunks;
    size_t npages;
    uint64_t fetches;
    cai_image *recorder;
};

/** Formats an error message into err (when errlen > 0) and returns st. */
cai_status cai_fail(char *err, size_t errlen, cai_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Frees a mapping list. */
void cai_mappings_free(cai_mapping *m, size_t n);

/** Reads a NUL-terminated string of at most `max` bytes (NUL excluded)
 *  into buf (size max + 1). 0, errno, or ENAMETOOLONG when unterminated. */
int cai_read_cstring(cai_reader *r, uint64_t addr, char *buf, size_t max);

/** Reads `len` bytes bypassing the cache (registry generation checks). */
int cai_read_fresh(cai_reader *r, uint64_t addr, void *buf, size_t len);

/* ELF helpers (elf.c) */

/** Looks for `section` in the ELF file open on `fd`. On success stores the
 *  section's link-time address and the page-aligned link-time address and
 *  file offset of the first loadable segment (to compute the load bias). */
cai_status cai_elf_find_section(int fd, const char *section, uint64_t *sh_addr, uint64_t *load_vaddr,
                                uint64_t *load_offset, char *err, size_t errlen);

#endif
