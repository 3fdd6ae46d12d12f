"""The HTTP API served by `opsmedic run`: ingest, webhooks, reads, health and metrics."""
