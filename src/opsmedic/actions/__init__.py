"""Built-in actions, one module each; runtime.build_registry lists them (and no more is
imported with a module of this package than the module itself)."""
