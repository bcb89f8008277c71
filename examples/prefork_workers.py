"""Pre-fork workers (gunicorn, uWSGI, multiprocessing): every worker exports its own traces.

The master imports the app (and may trace its start-up) before forking workers. Export threads do
not survive fork(), so the SDK rebuilds its export pipeline in each child on first use: no lost
spans, no spans exported twice, no deadlock on a lock held at fork time. Nothing to configure; with
gunicorn, `--preload` works as is.

    python examples/prefork_workers.py && mlflow-otel show
"""

import os
import sys

import mlflow_otel as mlflow
from mlflow_otel.entities import SpanType

WORKERS = int(os.environ.get("WORKERS", "3"))
REQUESTS_PER_WORKER = int(os.environ.get("REQUESTS_PER_WORKER", "4"))


@mlflow.trace(span_type=SpanType.CHAIN)
def handle_request(worker: int, n: int) -> str:
    return f"worker {worker} (pid {os.getpid()}) served request {n}"


@mlflow.trace(span_type=SpanType.CHAIN)
def master_startup() -> str:
    return "app loaded"


def worker_main(worker: int) -> None:
    for n in range(REQUESTS_PER_WORKER):
        handle_request(worker, n)
    # A worker that exits normally flushes at exit (with a deadline); gunicorn's worker_exit
    # hook is the place for an explicit flush_trace_async_logging().


if __name__ == "__main__":
    print(master_startup())  # the pipeline now runs in the master, before fork
    children = []
    for worker in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            worker_main(worker)
            sys.exit(0)
        children.append(pid)
    failed = [pid for pid in children if os.waitpid(pid, 0)[1] != 0]
    print(f"{WORKERS} workers served {WORKERS * REQUESTS_PER_WORKER} requests; failed: {failed}")
    sys.exit(1 if failed else 0)
