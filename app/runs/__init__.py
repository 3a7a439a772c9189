"""Runs: request schemas, validation, the durable queue, the worker and the runner."""
