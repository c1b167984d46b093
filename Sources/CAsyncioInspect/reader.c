/*
 * reader.c — the reader's sources (a live process through process_vm_readv,
 * a custom function, an in-memory image), the page cache in front of them
 * (Python/remote_debug.h keeps one too: most reads are a few bytes of a page
 * already fetched), and the search of the mapped binaries for the table.
 */
#include "inspect_internal.h"

#include <casyncio/debug.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define CHUNK_PAGES 64u
#define MAX_CACHED_PAGES (1u << 16) /* 256 MiB; the cache is flushed past it */

cai_status cai_fail(char *err, size_t errlen, cai_status st, const char *fmt, ...) {
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return st;
}

const char *cai_status_name(cai_status st) {
    switch (st) {
    case CAI_OK: return "ok";
    case CAI_ERR_READ: return "unreadable memory";
    case CAI_ERR_TORN: return "torn read";
    case CAI_ERR_FORMAT: return "bad table";
    case CAI_ERR_CORRUPT: return "corrupt memory";
    case CAI_ERR_LIMIT: return "limit reached";
    case CAI_ERR_NOMEM: return "out of memory";
    case CAI_ERR_NOTFOUND: return "not found";
    case CAI_ERR_PERM: return "permission denied";
    case CAI_ERR_SYS: return "system error";
    }
    return "unknown";
}

void cai_mappings_free(cai_mapping *m, size_t n) {
    if (m == NULL) return;
    for (size_t i = 0; i < n; i++) free(m[i].path);
    free(m);
}

/* MARK: - Page cache */

static void cache_clear(cai_reader *r) {
    if (r->slots != NULL) memset(r->slots, 0, r->nslots * sizeof *r->slots);
    r->used = 0;
    r->npages = 0;
}

void cai_reader_invalidate(cai_reader *r) { cache_clear(r); }

uint64_t cai_reader_page_fetches(const cai_reader *r) { return r->fetches; }

static uint8_t *page_storage(cai_reader *r, uint32_t index) {
    return r->chunks[index / CHUNK_PAGES] + (size_t)(index % CHUNK_PAGES) * CAI_PAGE_SIZE;
}

static size_t slot_of(const cai_reader *r, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (r->nslots - 1);
}

static int cache_grow(cai_reader *r) {
    size_t n = r->nslots ? r->nslots * 2 : 1024;
    cai_page_slot *slots = calloc(n, sizeof *slots);
    if (slots == NULL) return ENOMEM;
    cai_page_slot *old = r->slots;
    size_t oldn = r->nslots;
    r->slots = slots;
    r->nslots = n;
    for (size_t i = 0; i < oldn; i++) {
        if (old[i].page == 0) continue;
        size_t j = slot_of(r, old[i].page);
        while (slots[j].page != 0) j = (j + 1) & (n - 1);
        slots[j] = old[i];
    }
    free(old);
    return 0;
}

/* Returns the cached page at page_addr, fetching it on a miss. *data is
 * NULL (and the errno returned) for an unreadable page. */
static int cache_page(cai_reader *r, uint64_t page_addr, const uint8_t **data) {
    *data = NULL;
    if (r->used * 2 >= r->nslots) {
        if (r->npages >= MAX_CACHED_PAGES) cache_clear(r);
        else if (cache_grow(r) != 0) return ENOMEM;
    }
    uint64_t key = page_addr + 1;
    size_t j = slot_of(r, key);
    while (r->slots[j].page != 0) {
        if (r->slots[j].page == key) {
            if (r->slots[j].index == UINT32_MAX) return r->slots[j].error;
            *data = page_storage(r, r->slots[j].index);
            return 0;
        }
        j = (j + 1) & (r->nslots - 1);
    }
    if (r->npages / CHUNK_PAGES >= r->nchunks) {
        uint8_t **chunks = realloc(r->chunks, (r->nchunks + 1) * sizeof *chunks);
        if (chunks == NULL) return ENOMEM;
        r->chunks = chunks;
        chunks[r->nchunks] = malloc((size_t)CHUNK_PAGES * CAI_PAGE_SIZE);
        if (chunks[r->nchunks] == NULL) return ENOMEM;
        r->nchunks++;
    }
    uint32_t index = (uint32_t)r->npages;
    uint8_t *buf = page_storage(r, index);
    r->fetches++;
    int e = r->ops->fetch(r, page_addr, buf);
    r->slots[j].page = key;
    r->used++;
    if (e != 0) {
        r->slots[j].index = UINT32_MAX;
        r->slots[j].error = e;
        return e;
    }
    r->slots[j].index = index;
    r->npages++;
    if (r->recorder != NULL) cai_image_add(r->recorder, page_addr, buf, CAI_PAGE_SIZE);
    *data = buf;
    return 0;
}

int cai_reader_read(cai_reader *r, uint64_t addr, void *buf, size_t len) {
    uint8_t *out = buf;
    if (len == 0) return 0;
    if (addr + len < addr) return EFAULT;
    while (len > 0) {
        uint64_t page = addr & ~CAI_PAGE_MASK;
        size_t off = (size_t)(addr - page);
        size_t n = CAI_PAGE_SIZE - off;
        if (n > len) n = len;
        const uint8_t *data;
        int e = cache_page(r, page, &data);
        if (e != 0) return e;
        memcpy(out, data + off, n);
        out += n;
        addr += n;
        len -= n;
    }
    return 0;
}

int cai_read_fresh(cai_reader *r, uint64_t addr, void *buf, size_t len) {
    if (!r->live) return cai_reader_read(r, addr, buf, len);
    uint8_t page[CAI_PAGE_SIZE];
    uint8_t *out = buf;
    while (len > 0) {
        uint64_t p = addr & ~CAI_PAGE_MASK;
        size_t off = (size_t)(addr - p);
        size_t n = CAI_PAGE_SIZE - off;
        if (n > len) n = len;
        r->fetches++;
        int e = r->ops->fetch(r, p, page);
        if (e != 0) return e;
        memcpy(out, page + off, n);
        out += n;
        addr += n;
        len -= n;
    }
    return 0;
}

int cai_read_cstring(cai_reader *r, uint64_t addr, char *buf, size_t max) {
    size_t n = 0;
    while (n <= max) {
        uint64_t page = (addr + n) & ~CAI_PAGE_MASK;
        size_t off = (size_t)(addr + n - page);
        const uint8_t *data;
        int e = cache_page(r, page, &data);
        if (e != 0) return e;
        for (size_t i = off; i < CAI_PAGE_SIZE && n <= max; i++, n++) {
            buf[n] = (char)data[i];
            if (data[i] == 0) return 0;
        }
    }
    buf[max] = 0;
    return ENAMETOOLONG;
}

static cai_status reader_new(const cai_source_ops *ops, bool live, cai_reader **out) {
    cai_reader *r = calloc(1, sizeof *r);
    if (r == NULL) return CAI_ERR_NOMEM;
    r->ops = ops;
    r->live = live;
    if (cache_grow(r) != 0) {
        free(r);
        return CAI_ERR_NOMEM;
    }
    *out = r;
    return CAI_OK;
}

void cai_reader_close(cai_reader *r) {
    if (r == NULL) return;
    if (r->ops->close != NULL) r->ops->close(r);
    for (size_t i = 0; i < r->nchunks; i++) free(r->chunks[i]);
    free(r->chunks);
    free(r->slots);
    free(r);
}

void cai_reader_record(cai_reader *r, cai_image *img) { r->recorder = img; }

/* MARK: - Live process */

static int pid_fetch(cai_reader *r, uint64_t page_addr, uint8_t *buf) {
    struct iovec local = {buf, CAI_PAGE_SIZE};
    struct iovec remote = {(void *)(uintptr_t)page_addr, CAI_PAGE_SIZE};
    ssize_t n = process_vm_readv(r->pid, &local, 1, &remote, 1, 0);
    if (n == (ssize_t)CAI_PAGE_SIZE) return 0;
    return n < 0 ? errno : EFAULT;
}

/* /proc/PID/maps: "start-end perms offset dev inode   path" */
static cai_status pid_mappings(cai_reader *r, cai_mapping **out, size_t *count, char *err, size_t errlen) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/maps", r->pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return cai_fail(err, errlen, errno == EACCES ? CAI_ERR_PERM : CAI_ERR_SYS, "cannot open %s: %s", path,
                        strerror(errno));
    cai_mapping *maps = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t linecap = 0;
    cai_status st = CAI_OK;
    while (getline(&line, &linecap, f) > 0) {
        unsigned long long start, end, offset;
        int pathpos = 0;
        if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &offset, &pathpos) < 3 || pathpos == 0)
            continue;
        char *p = line + pathpos;
        p[strcspn(p, "\n")] = 0;
        if (p[0] != '/') continue; /* anonymous, [heap], [stack], [vdso] */
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            cai_mapping *m = realloc(maps, ncap * sizeof *m);
            if (m == NULL) {
                st = CAI_ERR_NOMEM;
                break;
            }
            maps = m;
            cap = ncap;
        }
        maps[n] = (cai_mapping){start, end, offset, strdup(p)};
        if (maps[n].path == NULL) {
            st = CAI_ERR_NOMEM;
            break;
        }
        n++;
    }
    free(line);
    fclose(f);
    if (st != CAI_OK) {
        cai_mappings_free(maps, n);
        return cai_fail(err, errlen, st, "out of memory reading %s", path);
    }
    *out = maps;
    *count = n;
    return CAI_OK;
}

/* The file behind a mapping: through the target's root (containers), then
 * the map_files link (which also opens a file deleted since it was mapped),
 * then the path as seen from here. */
static int pid_open_mapped(cai_reader *r, const cai_mapping *m) {
    char path[PATH_MAX + 64];
    const char *deleted = strstr(m->path, " (deleted)");
    size_t plen = deleted ? (size_t)(deleted - m->path) : strlen(m->path);
    snprintf(path, sizeof path, "/proc/%d/root%.*s", r->pid, (int)plen, m->path);
    int fd = deleted ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) return fd;
    snprintf(path, sizeof path, "/proc/%d/map_files/%llx-%llx", r->pid, (unsigned long long)m->start,
             (unsigned long long)m->end);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) return fd;
    snprintf(path, sizeof path, "%.*s", (int)plen, m->path);
    return open(path, O_RDONLY | O_CLOEXEC);
}

static const cai_source_ops pid_ops = {pid_fetch, pid_mappings, pid_open_mapped, NULL};

cai_status cai_reader_open_pid(int pid, cai_reader **out, char *err, size_t errlen) {
    *out = NULL;
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return cai_fail(err, errlen, CAI_ERR_SYS, "no process with pid %d", pid);
    cai_reader *r;
    if (reader_new(&pid_ops, true, &r) != CAI_OK) return cai_fail(err, errlen, CAI_ERR_NOMEM, "out of memory");
    r->pid = pid;
    *out = r;
    return CAI_OK;
}

/* MARK: - Custom sources and images */

static int custom_fetch(cai_reader *r, uint64_t page_addr, uint8_t *buf) {
    return r->custom_fn(r->custom_ctx, page_addr, buf, CAI_PAGE_SIZE);
}

static const cai_source_ops custom_ops = {custom_fetch, NULL, NULL, NULL};

cai_status cai_reader_open_custom(cai_read_fn fn, void *ctx, int live, cai_reader **out) {
    *out = NULL;
    cai_reader *r;
    if (reader_new(&custom_ops, live != 0, &r) != CAI_OK) return CAI_ERR_NOMEM;
    r->custom_fn = fn;
    r->custom_ctx = ctx;
    *out = r;
    return CAI_OK;
}

typedef struct cai_image_page {
    uint64_t addr;
    uint8_t *bytes;
} cai_image_page;

struct cai_image {
    cai_image_page *pages; /* sorted by addr */
    size_t n;
    size_t cap;
};

cai_image *cai_image_new(void) { return calloc(1, sizeof(cai_image)); }

void cai_image_free(cai_image *img) {
    if (img == NULL) return;
    for (size_t i = 0; i < img->n; i++) free(img->pages[i].bytes);
    free(img->pages);
    free(img);
}

static size_t image_lower_bound(const cai_image *img, uint64_t addr) {
    size_t lo = 0, hi = img->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (img->pages[mid].addr < addr) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static uint8_t *image_page(cai_image *img, uint64_t page, bool create) {
    size_t i = image_lower_bound(img, page);
    if (i < img->n && img->pages[i].addr == page) return img->pages[i].bytes;
    if (!create) return NULL;
    if (img->n == img->cap) {
        size_t ncap = img->cap ? img->cap * 2 : 64;
        cai_image_page *p = realloc(img->pages, ncap * sizeof *p);
        if (p == NULL) return NULL;
        img->pages = p;
        img->cap = ncap;
    }
    uint8_t *bytes = calloc(1, CAI_PAGE_SIZE);
    if (bytes == NULL) return NULL;
    memmove(img->pages + i + 1, img->pages + i, (img->n - i) * sizeof *img->pages);
    img->pages[i] = (cai_image_page){page, bytes};
    img->n++;
    return bytes;
}

int cai_image_add(cai_image *img, uint64_t addr, const void *bytes, size_t len) {
    const uint8_t *src = bytes;
    while (len > 0) {
        uint64_t page = addr & ~CAI_PAGE_MASK;
        size_t off = (size_t)(addr - page);
        size_t n = CAI_PAGE_SIZE - off;
        if (n > len) n = len;
        uint8_t *dst = image_page(img, page, true);
        if (dst == NULL) return ENOMEM;
        memcpy(dst + off, src, n);
        src += n;
        addr += n;
        len -= n;
    }
    return 0;
}

cai_image *cai_image_clone(const cai_image *img) {
    cai_image *c = cai_image_new();
    if (c == NULL) return NULL;
    c->pages = malloc((img->n ? img->n : 1) * sizeof *c->pages);
    if (c->pages == NULL) {
        free(c);
        return NULL;
    }
    c->cap = img->n ? img->n : 1;
    for (size_t i = 0; i < img->n; i++) {
        uint8_t *bytes = malloc(CAI_PAGE_SIZE);
        if (bytes == NULL) {
            cai_image_free(c);
            return NULL;
        }
        memcpy(bytes, img->pages[i].bytes, CAI_PAGE_SIZE);
        c->pages[c->n++] = (cai_image_page){img->pages[i].addr, bytes};
    }
    return c;
}

size_t cai_image_page_count(const cai_image *img) { return img->n; }
uint64_t cai_image_page_addr(const cai_image *img, size_t i) { return i < img->n ? img->pages[i].addr : 0; }
uint8_t *cai_image_page_bytes(cai_image *img, size_t i) { return i < img->n ? img->pages[i].bytes : NULL; }

void cai_image_drop_page(cai_image *img, size_t i) {
    if (i >= img->n) return;
    free(img->pages[i].bytes);
    memmove(img->pages + i, img->pages + i + 1, (img->n - i - 1) * sizeof *img->pages);
    img->n--;
}

static int image_fetch(cai_reader *r, uint64_t page_addr, uint8_t *buf) {
    uint8_t *src = image_page(r->image, page_addr, false);
    if (src == NULL) return EFAULT;
    memcpy(buf, src, CAI_PAGE_SIZE);
    return 0;
}

static const cai_source_ops image_ops = {image_fetch, NULL, NULL, NULL};

cai_status cai_reader_open_image(cai_image *img, cai_reader **out) {
    *out = NULL;
    cai_reader *r;
    if (reader_new(&image_ops, false, &r) != CAI_OK) return CAI_ERR_NOMEM;
    r->image = img;
    *out = r;
    return CAI_OK;
}

/* MARK: - Finding the table */

static bool already_seen(const cai_mapping *maps, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (strcmp(maps[j].path, maps[i].path) == 0) return true;
    return false;
}

/* The load bias of the file of maps[i]: where the mapping of the first
 * loadable segment's page went, minus that segment's link-time page. */
static bool load_bias(const cai_mapping *maps, size_t n, const char *path, uint64_t load_vaddr,
                      uint64_t load_offset, uint64_t *bias) {
    bool found = false;
    uint64_t best = 0;
    for (size_t j = 0; j < n; j++) {
        if (strcmp(maps[j].path, path) != 0 || maps[j].offset != load_offset) continue;
        if (!found || maps[j].start < best) best = maps[j].start;
        found = true;
    }
    if (found) *bias = best - load_vaddr;
    return found;
}

cai_status cai_find_tables(cai_reader *r, uint64_t *out, size_t cap, size_t *count, char *err, size_t errlen) {
    *count = 0;
    if (r->ops->mappings == NULL)
        return cai_fail(err, errlen, CAI_ERR_NOTFOUND, "this source has no mapped files to search");
    cai_mapping *maps;
    size_t n;
    cai_status st = r->ops->mappings(r, &maps, &n, err, errlen);
    if (st != CAI_OK) return st;
    size_t found = 0, searched = 0;
    for (size_t i = 0; i < n; i++) {
        if (already_seen(maps, i)) continue;
        int fd = r->ops->open_mapped(r, &maps[i]);
        if (fd < 0) continue;
        searched++;
        uint64_t sh_addr, load_vaddr, load_offset, bias;
        cai_status fs = cai_elf_find_section(fd, CA_DEBUG_SECTION, &sh_addr, &load_vaddr, &load_offset, NULL, 0);
        close(fd);
        if (fs != CAI_OK || !load_bias(maps, n, maps[i].path, load_vaddr, load_offset, &bias)) continue;
        if (found < cap) out[found] = sh_addr + bias;
        found++;
    }
    cai_mappings_free(maps, n);
    *count = found < cap ? found : cap;
    if (found == 0)
        return cai_fail(err, errlen, CAI_ERR_NOTFOUND,
                        "no mapped binary has a %s section (searched %zu files): the process does not link "
                        "the swift-asyncio core",
                        CA_DEBUG_SECTION, searched);
    return CAI_OK;
}
