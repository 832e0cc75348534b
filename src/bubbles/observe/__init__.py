"""Observing runs: metrics, history, logs, Prometheus, reports. Subscribes to runner events."""
