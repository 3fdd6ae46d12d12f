"""Deploying opsmedic: what a configuration needs from its host, and the systemd unit for it."""
