"""Changing flags: the FlagService that writes the store and Redis together and announces it."""
