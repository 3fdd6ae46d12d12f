"""Service level objectives: SLIs from events, per-minute samples, burn rates and budgets."""
