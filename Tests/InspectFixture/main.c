/*
 * inspect-fixture — a process with a known task tree for asyncio-inspect's
 * tests and `bench inspect`:
 *
 *     inspect-fixture tree | cycle | many N | orphan
 *
 * Once every task is suspended it prints one JSON line describing the tasks
 * (inspect_fixture.h, if_print_report) and waits for a line or EOF on stdin;
 * then it tears everything down and exits 0.
 */
#include <inspect_fixture.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void report_and_wait(const if_scenario *sc, void *arg) { if_report_and_wait(sc); }

/* A pending task whose thread has exited: the inspector lists it as thread 0. */
static int run_orphan(void) {
    if_orphan o;
    if (if_make_orphan(&o) != 0) return 1;
    if_scenario sc = {.nroles = 1, .main_thread = 0, .ntasks = 1};
    sc.roles[0] = (if_role){"orphan", o.task};
    report_and_wait(&sc, NULL);
    if_release_orphan(&o);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "tree";
    if (strcmp(mode, "tree") == 0) return if_run_tree(report_and_wait, NULL);
    if (strcmp(mode, "cycle") == 0) {
        int rc = if_run_cycle(report_and_wait, NULL);
        _exit(rc); /* the cycle cannot be torn down */
    }
    if (strcmp(mode, "many") == 0) {
        size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000;
        return if_run_many(n, report_and_wait, NULL);
    }
    if (strcmp(mode, "orphan") == 0) return run_orphan();
    fprintf(stderr, "usage: inspect-fixture tree | cycle | many N | orphan\n");
    return 2;
}
