"""Celery + Redis, the end-to-end peer: the same workloads as `pop-peers e2e`.

The worker: `celery -A celery_peer worker --pool=prefork --concurrency=2` (started by run.sh);
the client: `python celery_peer.py`. Broker and result backend: Redis at $POP_PEERS_REDIS
(default redis://127.0.0.1:6390/0). A workflow is a chain of no-op tasks (`noop.si()` x N); it is
done when its last task's result is stored. Prints JSON lines like `pop-peers e2e`.
"""

import json
import os
import threading
import time

from celery import Celery, chain

REDIS = os.environ.get("POP_PEERS_REDIS", "redis://127.0.0.1:6390/0")
app = Celery("celery_peer", broker=REDIS, backend=REDIS)
app.conf.update(
    task_acks_late=True,  # acknowledged after the task ran: a killed worker's task runs again
    worker_prefetch_multiplier=4,
    result_expires=600,
    broker_connection_retry_on_startup=True,
)


@app.task
def noop():
    return None


def workflow(ops):
    if ops == 1:
        return noop.si().apply_async()
    return chain(*[noop.si() for _ in range(ops)]).apply_async()


def pct(values, q):
    values = sorted(values)
    return values[round((len(values) - 1) * q)] if values else float("nan")


def closed_loop(ops, clients, total):
    """`clients` threads each submit a workflow and wait for it, `total` workflows in all."""
    lat, lock = [], threading.Lock()

    def client():
        mine = []
        for _ in range(total // clients):
            t = time.perf_counter()
            workflow(ops).get(timeout=120)
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            lat.extend(mine)

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    secs = time.perf_counter() - start
    print(json.dumps({"bench": "e2e", "peer": "celery", "ops": ops, "clients": clients, "workflows": len(lat),
                      "per_sec": len(lat) / secs, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99)}), flush=True)


def burst(ops, count):
    """`count` workflows submitted at once; when the first, the median and the last finish."""
    t0 = time.time()
    results = [workflow(ops) for _ in range(count)]
    submitted = (time.time() - t0) * 1000
    done = []
    for r in results:
        r.get(timeout=600)
        done.append((r.date_done.timestamp() - t0) * 1000)
    done.sort()
    print(json.dumps({"bench": "burst", "peer": "celery", "ops": ops, "workflows": count, "submitted_ms": submitted,
                      "first_ms": done[0], "p50_ms": pct(done, 0.5), "last_ms": done[-1]}), flush=True)


if __name__ == "__main__":
    noop.si().apply_async().get(timeout=60)  # the workers are up
    closed_loop(1, 32, 3200)
    closed_loop(10, 32, 960)
    burst(10, 1000)
