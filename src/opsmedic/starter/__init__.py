"""Starter files written by `opsmedic init`."""
