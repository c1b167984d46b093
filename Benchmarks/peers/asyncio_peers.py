#!/usr/bin/env python3
"""CPython asyncio and uvloop running the micro workloads of workloads.md.

`bench compare` runs this next to the C core and the Swift layer, so the
ratios it prints are measured in one invocation. Each workload is the same
work as its C version in Benchmarks/CBench, written as ordinary asyncio code:
no private APIs, nothing the library user would not write.

    python3 asyncio_peers.py --impl asyncio|uvloop --workload NAME|all
                             [--variant all|default] [--runs R] [--n N]
                             [--json] [--list]

One warm-up run, then R measured runs (default 5), all in this process. With
--json, one object per workload on one line of stdout:

    {"impl": "uvloop", "workload": "call_soon", "unit": "ns/op",
     "runs_ns": [...], "median": x, "min": y, "max": z,
     "python": "3.11.7", "impl_version": "0.23.0"}

Every workload here has one way only, its default: `--variant` (all or
default) is accepted so that bench can ask every peer the same way, and
selects the same single line either way.

runs_ns holds each run's nanoseconds per operation; median, min and max are
over the runs. wakeup_latency has unit "us" and adds p50_us, p99_us, p999_us
(median over the runs). Progress and diagnostics go to stderr. Exit status:
0 done, 2 bad usage, 3 the peer (or the requested workload) is not available
here, with a one-line reason on stderr.
"""

import argparse
import asyncio
import gc
import json
import math
import platform
import statistics
import sys
import threading
import time

BATCH = 1000
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class WorkloadError(Exception):
    """The work came out wrong: the loop lost or duplicated something."""


def batches(n):
    """Sizes of the batches of BATCH that make up n operations."""
    done = 0
    while done < n:
        size = min(BATCH, n - done)
        yield size
        done += size


# MARK: - The workloads
#
# Each takes (loop, n) and returns the nanoseconds the measured part took.


def call_soon(loop, n):
    """Batches of 1000 call_soon(cb); the loop then runs until drained."""
    count = 0

    def cb():
        nonlocal count
        count += 1

    call_soon = loop.call_soon
    t0 = time.perf_counter_ns()
    for size in batches(n):
        for _ in range(size):
            call_soon(cb)
        # stop() before run_forever() runs exactly one iteration, which runs
        # every callback queued before it.
        loop.stop()
        loop.run_forever()
    elapsed = time.perf_counter_ns() - t0
    if count != n:
        raise WorkloadError(f"{count} of {n} callbacks ran")
    return elapsed


def future_callback(loop, n):
    """Batches of 1000 futures: one done callback each, set_result(i) on
    each, then the loop runs until every callback ran."""
    count = 0

    def done(fut):
        nonlocal count
        count += 1

    create_future = loop.create_future
    t0 = time.perf_counter_ns()
    for size in batches(n):
        futs = [create_future() for _ in range(size)]
        for fut in futs:
            fut.add_done_callback(done)
        for i, fut in enumerate(futs):
            fut.set_result(i)
        loop.stop()
        loop.run_forever()
    elapsed = time.perf_counter_ns() - t0
    if count != n:
        raise WorkloadError(f"{count} of {n} done callbacks ran")
    return elapsed


async def _child(i):
    return i


async def _spawn_main(n):
    loop = asyncio.get_running_loop()
    create_task = loop.create_task
    total = 0
    for size in batches(n):
        tasks = [create_task(_child(i)) for i in range(size)]
        total += sum(await asyncio.gather(*tasks))
    return total


def _expected_spawn_sum(n):
    return sum(size * (size - 1) // 2 for size in batches(n))


def task_spawn(loop, n):
    """A main task creates batches of 1000 tasks whose coroutine returns i at
    once, then awaits gather() of the batch."""
    t0 = time.perf_counter_ns()
    total = loop.run_until_complete(_spawn_main(n))
    elapsed = time.perf_counter_ns() - t0
    if total != _expected_spawn_sum(n):
        raise WorkloadError(f"sum of results {total}, expected {_expected_spawn_sum(n)}")
    return elapsed


def _eager_factory_for_uvloop(loop, coro, *, eager_start=None, **kwargs):
    """asyncio.eager_task_factory's work for uvloop, whose create_task()
    passes eager_start= to the factory on Python 3.13+, which the asyncio one
    does not accept there."""
    return asyncio.Task(coro, loop=loop, eager_start=True, **kwargs)


def task_spawn_eager(loop, n):
    """task_spawn with the eager task factory: each child runs to completion
    inside create_task()."""
    if isinstance(loop, asyncio.BaseEventLoop):
        loop.set_task_factory(asyncio.eager_task_factory)
    else:
        loop.set_task_factory(_eager_factory_for_uvloop)
    try:
        return task_spawn(loop, n)
    finally:
        loop.set_task_factory(None)


async def _sleep0_main(n):
    sleep = asyncio.sleep
    i = 0
    for i in range(n):
        await sleep(0)
    return i + 1


def sleep0(loop, n):
    """One task awaits sleep(0) n times."""
    t0 = time.perf_counter_ns()
    done = loop.run_until_complete(_sleep0_main(n))
    elapsed = time.perf_counter_ns() - t0
    if done != n:
        raise WorkloadError(f"the task finished after {done} of {n} sleeps")
    return elapsed


async def _ping(q1, q2, n):
    total = 0
    for i in range(n):
        q1.put_nowait(i)
        total += await q2.get()
    return total


async def _pong(q1, q2, n):
    for _ in range(n):
        x = await q1.get()
        q2.put_nowait(x)


async def _ping_pong_main(n):
    q1 = asyncio.Queue()
    q2 = asyncio.Queue()
    a = asyncio.create_task(_ping(q1, q2, n))
    b = asyncio.create_task(_pong(q1, q2, n))
    total, _ = await asyncio.gather(a, b)
    return total


def ping_pong(loop, n):
    """Two tasks and two unbounded queues; one op is one round trip."""
    t0 = time.perf_counter_ns()
    total = loop.run_until_complete(_ping_pong_main(n))
    elapsed = time.perf_counter_ns() - t0
    if total != n * (n - 1) // 2:
        raise WorkloadError(f"sum of the round trips {total}, expected {n * (n - 1) // 2}")
    return elapsed


def _lcg_delays(n):
    """workloads.md's LCG: delays in seconds, whole microseconds in [0, 10 ms)."""
    x = 1
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out.append(((x >> 33) % 10000) / 1_000_000)
    return out


_delays_cache = {}


def timers(loop, n):
    """n call_later callbacks with the LCG's delays, every other one
    cancelled at once; the loop runs until every live one fired."""
    delays = _delays_cache.get(n)
    if delays is None:
        # The LCG is the input, not the work: computed once, outside the timing.
        delays = _delays_cache[n] = _lcg_delays(n)
    live = n - n // 2
    fired = 0
    cancelled_ran = False

    def live_cb():
        nonlocal fired
        fired += 1
        if fired == live:
            loop.stop()

    def cancelled_cb():
        nonlocal cancelled_ran
        cancelled_ran = True

    call_later = loop.call_later
    t0 = time.perf_counter_ns()
    handles = [call_later(d, cancelled_cb if i % 2 else live_cb) for i, d in enumerate(delays)]
    for h in handles[1::2]:
        h.cancel()
    loop.run_forever()
    elapsed = time.perf_counter_ns() - t0
    if cancelled_ran:
        raise WorkloadError("a cancelled timer's callback ran")
    if fired != live:
        raise WorkloadError(f"{fired} of {live} live timers fired")
    return elapsed


def wakeup_latency(loop, n):
    """Another thread calls call_soon_threadsafe(cb, sent) on an idle loop,
    one call at a time, every 200 µs; cb records now - sent. Returns the
    latencies in ns, sorted."""
    latencies = []
    got = threading.Event()
    done = loop.create_future()

    def cb(sent):
        latencies.append(time.perf_counter_ns() - sent)
        got.set()
        if len(latencies) == n:
            done.set_result(None)

    def sender():
        for _ in range(n):
            got.clear()
            time.sleep(0.0002)
            loop.call_soon_threadsafe(cb, time.perf_counter_ns())
            if not got.wait(5):
                return

    thread = threading.Thread(target=sender, name="wakeup-sender")
    thread.start()
    try:
        loop.run_until_complete(asyncio.wait_for(done, max(10.0, n * 0.002)))
    except TimeoutError:
        raise WorkloadError(f"{len(latencies)} of {n} wake-ups arrived") from None
    finally:
        thread.join()
    latencies.sort()
    return latencies


# name -> (function, default N), in workloads.md order (wakeup_latency last).
WORKLOADS = {
    "future_callback": (future_callback, 1_000_000),
    "call_soon": (call_soon, 1_000_000),
    "task_spawn": (task_spawn, 200_000),
    "task_spawn_eager": (task_spawn_eager, 200_000),
    "sleep0": (sleep0, 1_000_000),
    "ping_pong": (ping_pong, 200_000),
    "timers": (timers, 200_000),
    "wakeup_latency": (wakeup_latency, 5_000),
}


def unsupported_reason(name):
    """Why this Python cannot run the workload, or None."""
    if name == "task_spawn_eager" and not hasattr(asyncio, "eager_task_factory"):
        return (f"task_spawn_eager needs asyncio.eager_task_factory (Python 3.12+); "
                f"this is Python {platform.python_version()}")
    return None


# MARK: - Running


def percentile(sorted_values, p):
    """The nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values) - 1e-9) - 1))
    return sorted_values[k]


def make_loop(impl):
    if impl == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_workload(impl, name, runs, n):
    fn, default_n = WORKLOADS[name]
    n = n or default_n
    loop = make_loop(impl)
    asyncio.set_event_loop(loop)
    try:
        if name == "wakeup_latency":
            return _run_latency(loop, fn, runs, n)
        # Warm-up: a tenth of the work (at least one batch) fills the free
        # lists and caches the measured runs reuse.
        fn(loop, max(BATCH, n // 10))
        per_op = []
        for r in range(runs):
            # Every run starts with the garbage of the previous one collected;
            # the collector stays on during the run, as in real programs.
            gc.collect()
            per_op.append(fn(loop, n) / n)
            print(f"{impl} {name}: run {r + 1}/{runs}: {per_op[-1]:.0f} ns/op", file=sys.stderr)
        return {"unit": "ns/op", "n": n, "runs_ns": [round(x, 1) for x in per_op],
                "median": round(statistics.median(per_op), 1),
                "min": round(min(per_op), 1), "max": round(max(per_op), 1)}
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def _run_latency(loop, fn, runs, n):
    fn(loop, max(100, n // 10))
    p50, p99, p999 = [], [], []
    for r in range(runs):
        lat = fn(loop, n)
        p50.append(percentile(lat, 50) / 1000)
        p99.append(percentile(lat, 99) / 1000)
        p999.append(percentile(lat, 99.9) / 1000)
        print(f"wakeup_latency: run {r + 1}/{runs}: p50 {p50[-1]:.1f} µs, p99 {p99[-1]:.1f} µs",
              file=sys.stderr)
    return {"unit": "us", "n": n, "runs_ns": [round(x * 1000, 1) for x in p50],
            "median": round(statistics.median(p50), 2), "min": round(min(p50), 2),
            "max": round(max(p50), 2), "p50_us": round(statistics.median(p50), 2),
            "p99_us": round(statistics.median(p99), 2),
            "p999_us": round(statistics.median(p999), 2)}


def impl_version(impl):
    if impl == "uvloop":
        import uvloop
        return uvloop.__version__
    return platform.python_version()


def main(argv=None):
    parser = argparse.ArgumentParser(description="asyncio and uvloop peers of bench (workloads.md)")
    parser.add_argument("--impl", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--workload", default="all", help="a workload name, or all")
    parser.add_argument("--variant", choices=["all", "default"], default="all",
                        help="which ways of each workload to run; every workload here has only its default")
    parser.add_argument("--runs", type=int, default=5, help="measured runs after one warm-up")
    parser.add_argument("--n", type=int, default=0, help="operations per run (default: workloads.md's N)")
    parser.add_argument("--json", action="store_true", help="one JSON object per workload per line")
    parser.add_argument("--list", action="store_true", help="print the workloads this Python supports")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.n < 0:
        parser.error("--runs must be at least 1 and --n not negative")
    if args.workload != "all" and args.workload not in WORKLOADS:
        parser.error(f"unknown workload {args.workload!r}; one of: all, {', '.join(WORKLOADS)}")

    if args.impl == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop not installed (pip install uvloop)", file=sys.stderr)
            return EXIT_UNAVAILABLE

    supported = [w for w in WORKLOADS if unsupported_reason(w) is None]
    if args.list:
        for w in supported:
            if args.json:
                unit = "us" if w == "wakeup_latency" else "ns/op"
                print(json.dumps({"impl": args.impl, "workload": w, "unit": unit}))
            else:
                print(w)
        return 0

    if args.workload == "all":
        for w in WORKLOADS:
            reason = unsupported_reason(w)
            if reason:
                print(f"skipping {reason}", file=sys.stderr)
        names = supported
    else:
        reason = unsupported_reason(args.workload)
        if reason:
            print(reason, file=sys.stderr)
            return EXIT_UNAVAILABLE
        names = [args.workload]

    version = impl_version(args.impl)
    for name in names:
        try:
            result = run_workload(args.impl, name, args.runs, args.n)
        except WorkloadError as e:
            print(f"{args.impl} {name}: {e}", file=sys.stderr)
            return 1
        record = {"impl": args.impl, "workload": name, **result,
                  "python": platform.python_version(), "impl_version": version}
        if args.json:
            print(json.dumps(record), flush=True)
        else:
            extra = (f"  p99 {record['p99_us']} µs  p99.9 {record['p999_us']} µs"
                     if "p99_us" in record else "")
            print(f"{args.impl:8} {name:18} median {record['median']:>10} {record['unit']}"
                  f"  (min {record['min']}, max {record['max']}){extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
