"""The seed documents' examples, run as written (with small functions filled in).

Seed 002's ``pipeline.run(distributed=True)`` runs on Dask; its test lives with the Dask executor.
"""

from __future__ import annotations

import time

# --- seed 000: "Monitoring and optimizing ETL performance with Python Bubbles" -------------------


def my_task_function() -> list[int]:
    time.sleep(0.01)
    return [1, 2, 3]


def test_seed_000_metrics_collector() -> None:
    from bubbles import MetricsCollector, Workflow

    # Define your ETL workflow
    workflow = Workflow()

    # Define a metrics collector to track execution time
    metrics_collector = MetricsCollector()

    # Attach the metrics collector to a task
    task = workflow.add_task(my_task_function)
    task.attach(metrics_collector)

    # Run the workflow
    workflow.run()

    # Access the collected metrics
    execution_time = metrics_collector.get_metric("execution_time")

    assert isinstance(execution_time, float) and 0.01 <= execution_time < 5


def task1() -> str:
    time.sleep(0.2)
    return "a"


def task2() -> str:
    time.sleep(0.2)
    return "b"


def task3() -> str:
    time.sleep(0.2)
    return "c"


def test_seed_000_parallel_task() -> None:
    from bubbles import ParallelTask, Workflow

    # Define your ETL workflow
    workflow = Workflow()

    # Define a list of tasks
    tasks = [task1, task2, task3]

    # Create a parallel task to execute the tasks concurrently
    parallel_task = ParallelTask(tasks, max_concurrent_tasks=2)

    # Add the parallel task to the workflow
    workflow.add_task(parallel_task)

    # Run the workflow
    started = time.monotonic()
    result = workflow.run()
    elapsed = time.monotonic() - started

    assert result.tasks["parallel-1"].result == ["a", "b", "c"]
    assert 0.4 <= elapsed < 0.6 + 1.0  # two waves of 0.2 s: parallel, but at most 2 at once


# --- seed 001: "Scaling ETL processes with Python Bubbles" -------------------------------------


def test_seed_001_decorators() -> None:
    from pybubbles import bubbles, task

    @bubbles
    def process_data(data):  # type: ignore[no-untyped-def]
        # Perform data processing tasks
        return [task1(data), task2(data), task3(data)]

    @task
    def task1(data):  # type: ignore[no-untyped-def]
        # Task 1 logic
        time.sleep(0.2)
        return sum(data)

    @task
    def task2(data):  # type: ignore[no-untyped-def]
        # Task 2 logic
        time.sleep(0.2)
        return max(data)

    @task
    def task3(data):  # type: ignore[no-untyped-def]
        # Task 3 logic
        time.sleep(0.2)
        return len(data)

    data = [3, 1, 4, 1, 5]

    # Execute the tasks in parallel
    started = time.monotonic()
    results = process_data(data)
    assert results == [14, 5, 5]
    assert time.monotonic() - started < 0.5  # the three 0.2 s tasks overlapped
    assert task1(data) == 14  # outside a flow a task is a plain function


# --- seed 002: "Distributing ETL workloads with Python Bubbles" (locally) ----------------------


def test_seed_002_pipeline_locally() -> None:
    import bubbles

    def extract():  # type: ignore[no-untyped-def]
        # Extract data from a data source
        return [{"id": i, "amount": i * 10} for i in range(5)]

    def transform(data):  # type: ignore[no-untyped-def]
        # Perform transformations on the extracted data
        return [row | {"amount_eur": row["amount"] * 0.9} for row in data]

    loaded = []

    def load(data):  # type: ignore[no-untyped-def]
        # Load the transformed data into a destination
        loaded.extend(data)
        return len(data)

    # Define the ETL pipeline
    pipeline = bubbles.Pipeline()
    pipeline.add_task(extract)
    pipeline.add_task(transform)
    pipeline.add_task(load)

    result = pipeline.run()
    assert result.output == 5
    assert loaded[4] == {"id": 4, "amount": 40, "amount_eur": 36.0}


# --- seeds 001 and 002 read together: one `bubbles` name, the decorator and the package ----------


def test_seeds_001_and_002_together_use_one_bubbles_name() -> None:
    from pybubbles import bubbles, task

    @task
    def double(data):  # type: ignore[no-untyped-def]
        return [x * 2 for x in data]

    @bubbles
    def process_data(data):  # type: ignore[no-untyped-def]
        return double(data)

    def extract():  # type: ignore[no-untyped-def]
        return [1, 2, 3]

    def load(data):  # type: ignore[no-untyped-def]
        return sum(data)

    pipeline = bubbles.Pipeline()  # type: ignore[attr-defined]
    pipeline.add_task(extract)
    pipeline.add_task(process_data)
    pipeline.add_task(load)

    assert process_data([1, 2]) == [2, 4]
    assert pipeline.run().output == 12
