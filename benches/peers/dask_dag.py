"""The layered DAG (width 10, fan-in 10, no-op tasks) on dask: `python dask_dag.py <threaded|sync> <ops>`.

Builds the graph as a plain dask task dict (each task a call of a no-op function on the outputs of
the 10 tasks of the layer before) and runs it with `dask.threaded.get` (a pool of one thread per
core) or `dask.get` (the synchronous scheduler). One run measures the peak resident set above the
resident set before the graph was built; then runs repeated to about 100,000 operations in all give
wall and CPU time per operation. Prints one JSON line, like `pop-peers dag`.
"""

import json
import os
import sys
import time

import dask
import dask.threaded

WIDTH = 10


def noop(*_args):
    return None


def graph(n):
    g = {}
    for i in range(n):
        layer = i // WIDTH
        if layer == 0:
            g[f"n{i}"] = (noop,)
        else:
            g[f"n{i}"] = (noop, *[f"n{d}" for d in range((layer - 1) * WIDTH, layer * WIDTH)])
    return g


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def run(scheduler, n):
    g = graph(n)
    keys = [f"n{i}" for i in range(max(0, n - WIDTH), n)]
    if scheduler == "threaded":
        dask.threaded.get(g, keys, num_workers=os.cpu_count())
    else:
        dask.get(g, keys)


def main():
    scheduler, n = sys.argv[1], int(sys.argv[2])
    base = status_bytes("VmRSS")
    run(scheduler, n)
    peak = max(0, status_bytes("VmHWM") - base)
    reps = max(1, 100_000 // n)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(reps):
        run(scheduler, n)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ops = n * reps
    print(json.dumps({"bench": "dag", "peer": f"dask ({scheduler})", "ops": n, "runs": reps,
                      "us_per_op": wall * 1e6 / ops, "cpu_us_per_op": cpu * 1e6 / ops,
                      "peak_bytes_per_op": peak / n}))


if __name__ == "__main__":
    main()
