"""The engine: task graph, runner and executors. Knows nothing about data formats."""
