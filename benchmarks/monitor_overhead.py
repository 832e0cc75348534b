"""Cost of monitoring on a 10,000 no-op task fan-out: bare runner vs collector + history + progress.

Run: PYTHONPATH=src python benchmarks/monitor_overhead.py [--tasks 10000] [--repeat 5] [--executor threads]

"bare" turns every default observer off (BUBBLES_HISTORY=0, BUBBLES_MEMORY=0,
BUBBLES_CAPTURE_LOGS=0, no progress). "monitored" attaches a MetricsCollector to the workflow
and runs with the defaults (history + resource sampler + peak-memory and log-capture probes)
plus a ProgressDisplay drawing to a rich console (a terminal, written to memory). The partial
variants show where the cost goes; "empty hook" is a hook whose on_task_start/on_task_end do
nothing — the runner's own cost of delivering events. All variants alternate in the same
process, in an order rotated each round, each after a full garbage collection; the script prints
the median wall and CPU time of each and the ratio to "bare".
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from bubbles import MetricsCollector, Workflow
from bubbles.observe.progress import ProgressDisplay

OFF = {
    "BUBBLES_HISTORY": "0",
    "BUBBLES_MEMORY": "0",
    "BUBBLES_CAPTURE_LOGS": "0",
    "BUBBLES_PROGRESS": "0",
    "BUBBLES_RESOURCES": "0",
}
DEFAULTS_ON = {"BUBBLES_HISTORY": "1", "BUBBLES_MEMORY": "1", "BUBBLES_CAPTURE_LOGS": "1", "BUBBLES_RESOURCES": "1"}


def noop() -> None:
    return None


class EmptyHook:
    def on_task_start(self, **future_kwargs: Any) -> None:
        pass

    def on_task_end(self, **future_kwargs: Any) -> None:
        pass


def progress() -> ProgressDisplay:
    from rich.console import Console

    return ProgressDisplay(console=Console(file=io.StringIO(), force_terminal=True))


VARIANTS: dict[str, tuple[dict[str, str], Callable[[], list[Any]], bool]] = {
    # name: (environment, extra hooks, attach a MetricsCollector)
    "bare": ({}, list, False),
    "empty hook": ({}, lambda: [EmptyHook()], False),
    "collector": ({}, list, True),
    "probes (memory + logs)": ({"BUBBLES_MEMORY": "1", "BUBBLES_CAPTURE_LOGS": "1"}, list, False),
    "history (+ resources)": ({"BUBBLES_HISTORY": "1", "BUBBLES_RESOURCES": "1"}, list, False),
    "progress": ({}, lambda: [progress()], False),
    "monitored (all)": (DEFAULTS_ON, lambda: [progress()], True),
}


def run_once(n: int, executor: str, variant: str) -> tuple[float, float]:
    env, hooks, collect = VARIANTS[variant]
    os.environ.update(OFF)
    os.environ.update(env)
    wf = Workflow("fanout")
    for i in range(n):
        wf.add_task(noop, name=f"t{i}")
    if collect:
        wf.attach(MetricsCollector())
    extra = hooks()
    gc.collect()  # every variant starts from the same heap: a full collection inside one timing is noise
    w0, c0 = time.perf_counter(), time.process_time()
    wf.run(executor, hooks=extra)
    return time.perf_counter() - w0, time.process_time() - c0


def micro() -> None:
    """Per-attempt cost of each observer (best of 5 x 20,000 attempts: robust on a loaded machine)."""
    import timeit

    from bubbles.engine.execute import Outcome
    from bubbles.engine.live import AttemptRecord
    from bubbles.observe.history import RunRecorder
    from bubbles.observe.memory import MemoryProbe

    fields = dict(
        run_id="r",
        workflow="w",
        task="t1",
        group=None,
        attempt=1,
        status="succeeded",
        started_at=1.0,
        ended_at=2.0,
        duration=1e-5,
        metrics={"execution_time": 1e-5, "cpu_time": 1e-5, "peak_memory": 123456},
        worker="1:x",
        error=None,
        traceback="",
        logs=None,
    )
    record = AttemptRecord("t1", None, 1, "succeeded", 1.0, 2.0, 1e-5, fields["metrics"], "1:x", None, "", None)  # type: ignore[arg-type]

    class Live:  # a LiveRun stand-in whose journal the micro-benchmark fills
        run_id, workflow, total, done, running, finished = "r", "w", 0, 0, 0, False

        def __init__(self) -> None:
            self.attempts: list[Any] = []

    def read_by(observer: Any, read: Callable[[], None], n: int = 20_000) -> float:
        """Seconds per attempt for ``observer`` to read a journal of ``n`` attempts."""
        best = float("inf")
        for _ in range(5):
            live = Live()
            live.attempts.extend([record] * n)
            observer.on_run_start(run_id="r", workflow="w", tasks=[], executor="x", started_at=1.0, live=live)
            t0 = time.perf_counter()
            read()
            best = min(best, (time.perf_counter() - t0) / n)
        return best

    from bubbles.observe.history import _RunWriter

    writer = _RunWriter(RunRecorder(flush_every=1e9), "r", None, ())  # read only: no thread, no database

    class Recorder:
        def on_run_start(self, *, live: Any, **future_kwargs: Any) -> None:
            writer.live, writer.seen, writer.batch = live, 0, {"attempts": [], "metrics": [], "logs": [], "profiles": []}

    recorder = Recorder()
    collector = MetricsCollector()
    shown = progress()
    shown.on_run_start = lambda **kw: setattr(shown, "_run", kw["live"]) or setattr(shown, "_seen", 0)  # type: ignore[method-assign]
    empty = EmptyHook()
    memory = MemoryProbe()
    outcome = Outcome("k", 1, True)
    outcome.duration = 1e-6

    def probes() -> None:
        memory.exit(memory.enter(), outcome)

    print("per attempt, best of 5 x 20,000:")
    calls = {
        "a hook's on_task_end(**fields) call": lambda: empty.on_task_end(**fields),
        "peak-memory probe (log capture: 0)": probes,
    }
    for name, fn in calls.items():
        best = min(timeit.repeat(fn, number=20_000, repeat=5)) / 20_000
        print(f"  {name:<40} {best * 1e6:6.2f} us")
    reads = {
        "RunRecorder reads the journal (columns)": (recorder, writer.read_run),
        "MetricsCollector reads it (records)": (collector, lambda: collector.records),
        "ProgressDisplay reads it (counters)": (shown, shown.update),
    }
    for name, (observer, read) in reads.items():
        print(f"  {name:<40} {read_by(observer, read) * 1e6:6.2f} us  (on the reader's thread)")
    from bubbles.observe.history import _encode

    columns = writer.batch["attempts"][-1]["columns"]
    n = len(columns["task"])
    best = min(timeit.repeat(lambda: _encode(columns), number=1, repeat=5)) / n
    print(f"  {'RunRecorder packs them in a chunk':<40} {best * 1e6:6.2f} us  (on the reader's thread)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--executor", default="threads")
    parser.add_argument("--micro", action="store_true", help="only the per-call costs of each observer")
    parser.add_argument("--only", help="comma-separated variants to run (bare is always run), e.g. 'monitored (all)'")
    args = parser.parse_args()
    if args.micro:
        micro()
        return
    os.environ["BUBBLES_HOME"] = tempfile.mkdtemp(prefix="bubbles-bench-")
    run_once(500, args.executor, "monitored (all)")  # warm up imports, sampler thread, database
    names = list(VARIANTS)
    if args.only:
        names = ["bare", *[n.strip() for n in args.only.split(",") if n.strip() in VARIANTS and n.strip() != "bare"]]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_ in range(args.repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:  # rotated: no variant always first
            results[name].append(run_once(args.tasks, args.executor, name))
    bare = results["bare"]
    bw = statistics.median(r[0] for r in bare)
    print(f"{args.tasks:,} no-op tasks, executor={args.executor}, {args.repeat} rounds (load {os.getloadavg()[0]:.2f})")
    best_bare = min(r[0] for r in bare)
    print("  overhead over bare, wall and CPU: median of the per-round ratios (each variant against bare of the same")
    print("  round); best: the best run of each against the best bare run (the least disturbed runs)")
    for name, rows in results.items():
        w = statistics.median(r[0] for r in rows)
        wall = statistics.median(r[0] / b[0] for r, b in zip(rows, bare, strict=True))
        cpu = statistics.median(r[1] / b[1] for r, b in zip(rows, bare, strict=True))
        best = min(r[0] for r in rows) / best_bare
        print(
            f"  {name:<24} wall {w:.3f} s ({100 * (wall - 1):+6.1f} %)   CPU ({100 * (cpu - 1):+6.1f} %)"
            f"   best ({100 * (best - 1):+6.1f} %)   {1e6 * (w - bw) / args.tasks:+.1f} us/task"
        )
    print("  target: monitored (all) <= +15 % over bare")


if __name__ == "__main__":
    main()
