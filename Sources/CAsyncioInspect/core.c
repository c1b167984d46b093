/*
 * core.c — a core dump as a reader source. Memory comes from the PT_LOAD
 * segments; pages a dumper leaves out (read-only file mappings: the code and
 * the string constants coroutine names point at) are read from the mapped
 * files the NT_FILE note lists, which also serves cai_find_tables the way
 * /proc/PID/maps serves a live process.
 */
#include "inspect_internal.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NT_FILE
#define NT_FILE 0x46494c45
#endif

typedef struct core_segment {
    uint64_t vaddr;
    uint64_t memsz;
    uint64_t offset;
    uint64_t filesz;
} core_segment;

typedef struct cai_core {
    const uint8_t *base;
    uint64_t size;
    core_segment *segs; /* sorted by vaddr */
    size_t nsegs;
    cai_mapping *maps;  /* NT_FILE entries */
    size_t nmaps;
    int *map_fds;       /* per entry, opened lazily (-2: not tried) */
    char *exe;          /* --exe, or NULL */
} cai_core;

static bool in_core(const cai_core *c, uint64_t off, uint64_t len) { return off <= c->size && len <= c->size - off; }

static int seg_cmp(const void *a, const void *b) {
    const core_segment *x = a, *y = b;
    return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

/* NT_FILE: count, page size, count x {start, end, page offset}, then the
 * count file names, each NUL-terminated. */
static cai_status parse_nt_file(cai_core *c, const uint8_t *desc, uint64_t descsz) {
    if (descsz < 16) return CAI_ERR_FORMAT;
    uint64_t count, page;
    memcpy(&count, desc, 8);
    memcpy(&page, desc + 8, 8);
    if (count > (descsz - 16) / 24 || count > 1u << 20) return CAI_ERR_FORMAT;
    const uint8_t *names = desc + 16 + count * 24;
    const uint8_t *end = desc + descsz;
    c->maps = calloc(count ? count : 1, sizeof *c->maps);
    c->map_fds = malloc((count ? count : 1) * sizeof *c->map_fds);
    if (c->maps == NULL || c->map_fds == NULL) return CAI_ERR_NOMEM;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = desc + 16 + i * 24;
        uint64_t v[3];
        memcpy(v, e, 24);
        const uint8_t *nul = memchr(names, 0, (size_t)(end - names));
        if (nul == NULL) return CAI_ERR_FORMAT;
        c->maps[i] = (cai_mapping){v[0], v[1], v[2] * page, strndup((const char *)names, (size_t)(nul - names))};
        c->map_fds[i] = -2;
        if (c->maps[i].path == NULL) return CAI_ERR_NOMEM;
        c->nmaps = i + 1;
        names = nul + 1;
    }
    return CAI_OK;
}

static cai_status parse_notes(cai_core *c, const Elf64_Phdr *ph) {
    if (!in_core(c, ph->p_offset, ph->p_filesz)) return CAI_ERR_FORMAT;
    const uint8_t *p = c->base + ph->p_offset, *end = p + ph->p_filesz;
    while ((uint64_t)(end - p) >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr nh;
        memcpy(&nh, p, sizeof nh);
        uint64_t name_len = ((uint64_t)nh.n_namesz + 3) & ~3ull;
        uint64_t desc_len = ((uint64_t)nh.n_descsz + 3) & ~3ull;
        const uint8_t *desc = p + sizeof nh + name_len;
        if (name_len > (uint64_t)(end - p) - sizeof nh || desc_len > (uint64_t)(end - desc)) return CAI_ERR_FORMAT;
        if (nh.n_type == NT_FILE && c->maps == NULL) {
            cai_status st = parse_nt_file(c, desc, nh.n_descsz);
            if (st != CAI_OK) return st;
        }
        p = desc + desc_len;
    }
    return CAI_OK;
}

static void core_close(cai_reader *r) {
    cai_core *c = r->core;
    if (c == NULL) return;
    if (c->base != NULL) munmap((void *)c->base, (size_t)c->size);
    for (size_t i = 0; i < c->nmaps; i++)
        if (c->map_fds[i] >= 0) close(c->map_fds[i]);
    cai_mappings_free(c->maps, c->nmaps);
    free(c->map_fds);
    free(c->segs);
    free(c->exe);
    free(c);
    r->core = NULL;
}

/* --exe stands for the entry of the main binary: the same path, or the same
 * file name when the binary moved since the dump. */
static bool is_exe(const cai_core *c, const char *path) {
    if (c->exe == NULL) return false;
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(path, a) != NULL && realpath(c->exe, b) != NULL && strcmp(a, b) == 0) return true;
    const char *pa = strrchr(path, '/'), *pb = strrchr(c->exe, '/');
    return strcmp(pa ? pa + 1 : path, pb ? pb + 1 : c->exe) == 0;
}

static int core_open_mapped(cai_reader *r, const cai_mapping *m) {
    cai_core *c = r->core;
    return open(is_exe(c, m->path) ? c->exe : m->path, O_RDONLY | O_CLOEXEC);
}

static int mapped_fd(cai_reader *r, size_t i) {
    cai_core *c = r->core;
    if (c->map_fds[i] == -2) c->map_fds[i] = core_open_mapped(r, &c->maps[i]);
    return c->map_fds[i];
}

static int core_fetch(cai_reader *r, uint64_t page_addr, uint8_t *buf) {
    cai_core *c = r->core;
    size_t lo = 0, hi = c->nsegs;
    while (lo < hi) { /* the last segment starting at or before page_addr */
        size_t mid = lo + (hi - lo) / 2;
        if (c->segs[mid].vaddr <= page_addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo > 0) {
        const core_segment *s = &c->segs[lo - 1];
        uint64_t rel = page_addr - s->vaddr;
        if (rel < s->memsz && rel + CAI_PAGE_SIZE <= s->filesz && in_core(c, s->offset + rel, CAI_PAGE_SIZE)) {
            memcpy(buf, c->base + s->offset + rel, CAI_PAGE_SIZE);
            return 0;
        }
    }
    for (size_t i = 0; i < c->nmaps; i++) {
        const cai_mapping *m = &c->maps[i];
        if (page_addr < m->start || page_addr >= m->end) continue;
        int fd = mapped_fd(r, i);
        if (fd < 0) return ENOENT;
        ssize_t n = pread(fd, buf, CAI_PAGE_SIZE, (off_t)(m->offset + (page_addr - m->start)));
        if (n <= 0) return EFAULT;
        if (n < (ssize_t)CAI_PAGE_SIZE) memset(buf + n, 0, CAI_PAGE_SIZE - (size_t)n);
        return 0;
    }
    return EFAULT;
}

static cai_status core_mappings(cai_reader *r, cai_mapping **out, size_t *n, char *err, size_t errlen) {
    cai_core *c = r->core;
    if (c->nmaps == 0)
        return cai_fail(err, errlen, CAI_ERR_NOTFOUND, "the core has no NT_FILE note listing its mapped files");
    cai_mapping *m = calloc(c->nmaps, sizeof *m);
    if (m == NULL) return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->nmaps; i++) {
        m[i] = c->maps[i];
        m[i].path = strdup(c->maps[i].path);
        if (m[i].path == NULL) {
            cai_mappings_free(m, i);
            return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
        }
    }
    *out = m;
    *n = c->nmaps;
    return CAI_OK;
}

static const cai_source_ops cai_core_ops = {core_fetch, core_mappings, core_open_mapped, core_close};

static cai_status core_open(cai_reader *r, const char *core_path, const char *exe_path, char *err, size_t errlen) {
    cai_core *c = calloc(1, sizeof *c);
    if (c == NULL) return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    r->core = c;
    if (exe_path != NULL && (c->exe = strdup(exe_path)) == NULL)
        return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    int fd = open(core_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cai_fail(err, errlen, CAI_ERR_SYS, "cannot open %s: %s", core_path, strerror(errno));
    struct stat stbuf;
    if (fstat(fd, &stbuf) != 0 || (uint64_t)stbuf.st_size < sizeof(Elf64_Ehdr)) {
        close(fd);
        return cai_fail(err, errlen, CAI_ERR_FORMAT, "%s is not a core dump", core_path);
    }
    c->size = (uint64_t)stbuf.st_size;
    c->base = mmap(NULL, (size_t)c->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (c->base == MAP_FAILED) {
        c->base = NULL;
        return cai_fail(err, errlen, CAI_ERR_SYS, "mmap %s: %s", core_path, strerror(errno));
    }
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)c->base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_type != ET_CORE || eh->e_phentsize != sizeof(Elf64_Phdr) ||
        !in_core(c, eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr)))
        return cai_fail(err, errlen, CAI_ERR_FORMAT, "%s is not a 64-bit little-endian ELF core dump", core_path);
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(c->base + eh->e_phoff);
    c->segs = calloc(eh->e_phnum ? eh->e_phnum : 1, sizeof *c->segs);
    if (c->segs == NULL) return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    for (unsigned i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD) {
            c->segs[c->nsegs++] = (core_segment){ph[i].p_vaddr, ph[i].p_memsz, ph[i].p_offset, ph[i].p_filesz};
        } else if (ph[i].p_type == PT_NOTE) {
            cai_status st = parse_notes(c, &ph[i]);
            if (st != CAI_OK) return cai_fail(err, errlen, st, "%s has malformed notes", core_path);
        }
    }
    qsort(c->segs, c->nsegs, sizeof *c->segs, seg_cmp);
    return CAI_OK;
}

cai_status cai_reader_open_core(const char *core_path, const char *exe_path, cai_reader **out, char *err,
                                size_t errlen) {
    *out = NULL;
    cai_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    r->ops = &cai_core_ops; /* the page cache grows on first use */
    cai_status st = core_open(r, core_path, exe_path, err, errlen);
    if (st != CAI_OK) {
        cai_reader_close(r);
        return st;
    }
    *out = r;
    return CAI_OK;
}
