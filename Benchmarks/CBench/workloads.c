/*
 * workloads.c — the registry the `bench` executable lists and runs.
 */
#include <string.h>

#include "casyncio_bench.h"

static const cab_workload workloads[] = {
    {"future_callback", "future", 1000000, cab_run_future_callback},
    {"call_soon", "callback", 1000000, cab_run_call_soon},
    {"task_spawn", "task", 200000, cab_run_task_spawn},
    {"task_spawn_eager", "task", 200000, cab_run_task_spawn_eager},
    {"sleep0", "iteration", 1000000, cab_run_sleep0},
    {"timers", "scheduled timer", 200000, cab_run_timers},
    {"ping_pong", "round trip", 200000, cab_run_ping_pong},
};

const cab_workload *cab_workloads(size_t *count) {
    *count = sizeof workloads / sizeof workloads[0];
    return workloads;
}

const cab_workload *cab_workload_find(const char *name) {
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        if (strcmp(workloads[i].name, name) == 0) return &workloads[i];
    }
    return NULL;
}
