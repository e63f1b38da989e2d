"""Example background worker: validates job specs and plans their retries (stdlib only)."""
