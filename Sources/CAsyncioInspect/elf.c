/*
 * elf.c — finding a section in an ELF file (Python/remote_debug.h's
 * search_linux_map_for_section does the same for _AsyncioDebug), with every
 * header offset checked against the file size: the files come from the
 * target and may be anything.
 */
#include "inspect_internal.h"

#include <elf.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

static bool in_file(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

cai_status cai_elf_find_section(int fd, const char *section, uint64_t *sh_addr, uint64_t *load_vaddr,
                                uint64_t *load_offset, char *err, size_t errlen) {
    struct stat stbuf;
    if (fstat(fd, &stbuf) != 0 || !S_ISREG(stbuf.st_mode) || (uint64_t)stbuf.st_size < sizeof(Elf64_Ehdr))
        return cai_fail(err, errlen, CAI_ERR_FORMAT, "not a regular ELF file");
    uint64_t size = (uint64_t)stbuf.st_size;
    const uint8_t *base = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) return cai_fail(err, errlen, CAI_ERR_SYS, "mmap: %s", strerror(errno));
    cai_status st = CAI_ERR_FORMAT;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB) {
        cai_fail(err, errlen, st, "not a 64-bit little-endian ELF file");
        goto done;
    }
    /* program headers: the first loadable segment gives the load bias */
    if (eh->e_phentsize != sizeof(Elf64_Phdr) || !in_file(eh->e_phoff, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), size)) {
        cai_fail(err, errlen, st, "bad program headers");
        goto done;
    }
    const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
    const Elf64_Phdr *first = NULL;
    for (unsigned i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD && (first == NULL || ph[i].p_vaddr < first->p_vaddr)) first = &ph[i];
    if (first == NULL) {
        cai_fail(err, errlen, st, "no loadable segment");
        goto done;
    }
    /* section headers, with the extended numbering of huge files */
    if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shoff == 0 || !in_file(eh->e_shoff, sizeof(Elf64_Shdr), size)) {
        cai_fail(err, errlen, st, "no section headers");
        goto done;
    }
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + eh->e_shoff);
    uint64_t shnum = eh->e_shnum ? eh->e_shnum : sh[0].sh_size;
    uint64_t shstrndx = eh->e_shstrndx == SHN_XINDEX ? sh[0].sh_link : eh->e_shstrndx;
    if (shnum > (size - eh->e_shoff) / sizeof(Elf64_Shdr) || shstrndx >= shnum) {
        cai_fail(err, errlen, st, "bad section headers");
        goto done;
    }
    const Elf64_Shdr *strtab = &sh[shstrndx];
    if (!in_file(strtab->sh_offset, strtab->sh_size, size)) {
        cai_fail(err, errlen, st, "bad section name table");
        goto done;
    }
    const char *names = (const char *)base + strtab->sh_offset;
    size_t want = strlen(section);
    st = CAI_ERR_NOTFOUND;
    for (uint64_t i = 0; i < shnum; i++) {
        uint64_t off = sh[i].sh_name;
        if (off >= strtab->sh_size || strtab->sh_size - off <= want) continue;
        if (memcmp(names + off, section, want + 1) != 0) continue;
        if (!(sh[i].sh_flags & SHF_ALLOC)) continue;
        *sh_addr = sh[i].sh_addr;
        *load_vaddr = first->p_vaddr & ~CAI_PAGE_MASK;
        *load_offset = first->p_offset & ~CAI_PAGE_MASK;
        st = CAI_OK;
        break;
    }
    if (st != CAI_OK) cai_fail(err, errlen, st, "no %s section", section);
done:
    munmap((void *)base, (size_t)size);
    return st;
}
