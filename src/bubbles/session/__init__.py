"""The run session: one run's context (settings, secrets, observers, executor) and its lifecycle."""
