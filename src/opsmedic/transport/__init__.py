"""Shared plumbing for plugins and machinery: local processes, SSH, one HTTP client factory."""
