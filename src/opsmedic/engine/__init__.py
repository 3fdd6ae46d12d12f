"""The engine: the decision loop, the planner (pure), the executor, the journal and incidents."""
