"""Feature flags: the model and its evaluation, for opsmedic and the applications it serves."""
