"""opsmedic: rehearsed, bounded and audited remediation for on-call toil."""

__version__ = "0.1.0"
