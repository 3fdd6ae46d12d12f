"""Configuration: schema, located YAML loading, and the starter files of `opsmedic init`."""
