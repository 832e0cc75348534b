"""The public API: Workflow, Pipeline, ParallelTask and the @task / @bubbles decorators."""
