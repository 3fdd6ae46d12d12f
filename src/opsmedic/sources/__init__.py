"""Sources turn the world into Events: generic JSON events here; webhooks and pollers later."""
