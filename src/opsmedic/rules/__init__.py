"""Rules: the YAML rule model, the condition compiler, the indexed rule set and its loader."""
