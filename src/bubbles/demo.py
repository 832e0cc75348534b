"""The demo ETL job behind ``bubbles demo`` (grows with each capability)."""

from __future__ import annotations


def run_demo(*, rows: int, workdir: str, executor: str) -> int:
    from .api.workflow import Workflow

    wf = Workflow("demo")
    wf.add_task(lambda: list(range(rows)), name="extract")
    result = wf.run(executor=executor, raise_on_error=False)
    print(result.status)
    return 0 if result.ok else 1
