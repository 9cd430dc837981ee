"""Anomaly detection: config (cheap to import), statistics (detector.core), the per-series service and replay."""
