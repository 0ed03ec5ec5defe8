"""Observability for storybench-prompts: OpenTelemetry metrics and traces, Prometheus."""
