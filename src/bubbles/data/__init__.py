"""The data plane: Arrow-based connectors, SQL transforms, quality checks, incremental state."""
