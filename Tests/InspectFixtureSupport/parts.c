/*
 * parts.c — C coroutines and report helpers for the Swift fixture
 * (Tests/InspectFixtureSwift), which builds its tree from Swift bodies and
 * these. Every await sits on its own line: the inspector shows that line.
 */
#include "inspect_fixture.h"

#include <string.h>

typedef struct waiter_frame {
    ca_cframe cf;
    ca_future *fut; /* owned */
} waiter_frame;

static void waiter_finalize(waiter_frame *f) { CA_CLEAR(f->fut); }

CA_CORO_TYPE(c_waiter_type, waiter_frame, c_waiter, waiter_finalize);
CA_CORO_BODY(c_waiter, waiter_frame) {
    CA_BEGIN;
    CA_AWAIT(ca_incref(self->fut));
    CA_END;
}

CA_CORO_TYPE(c_nested_type, waiter_frame, c_nested, waiter_finalize);
CA_CORO_BODY(c_nested, waiter_frame) {
    CA_BEGIN;
    CA_AWAIT_CORO(if_waiter_new(self->fut));
    CA_END;
}

static ca_coro *waiter_frame_new(const ca_cframe_type *type, ca_future *fut) {
    waiter_frame *f = (waiter_frame *)ca_cframe_new(type, sizeof(waiter_frame));
    if (f != NULL) f->fut = ca_incref(fut);
    return f != NULL ? &f->cf.co : NULL;
}

ca_coro *if_waiter_new(ca_future *fut) { return waiter_frame_new(&c_waiter_type, fut); }

ca_coro *if_nested_waiter_new(ca_future *fut) { return waiter_frame_new(&c_nested_type, fut); }

void if_scenario_add_role(if_scenario *sc, const char *role, ca_task *task) {
    if (task == NULL || sc->nroles == IF_MAX_ROLES) return;
    sc->roles[sc->nroles++] = (if_role){role, task};
}

void if_report_and_wait(const if_scenario *sc) {
    if_print_report(stdout, sc);
    char line[64];
    (void)fgets(line, sizeof line, stdin);
}
