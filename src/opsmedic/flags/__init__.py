"""Feature flags: the model and evaluation, and their transport between processes."""
