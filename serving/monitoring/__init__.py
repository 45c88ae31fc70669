"""Monitoring: Prometheus metrics and their /metrics page, input drift, structured logs."""
