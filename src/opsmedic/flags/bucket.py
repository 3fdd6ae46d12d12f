"""Unleash-compatible rollout buckets: a user keeps their bucket, so a rollout only ever grows."""

from __future__ import annotations

import mmh3

UNLEASH_NORMALIZER = 100


def normalized_hash(
    identifier: str, group_id: str, normalizer: int = UNLEASH_NORMALIZER, seed: int = 0
) -> int:
    """The bucket, 1..normalizer, of `identifier` in `group_id` (the flag key): Unleash's
    murmur3_x86_32("group_id:identifier", seed) % normalizer + 1, bit for bit."""
    return mmh3.hash(f"{group_id}:{identifier}", seed, signed=False) % normalizer + 1


def in_rollout(percentage: int, identifier: str, group_id: str) -> bool:
    """Whether `identifier` is in a `percentage` % rollout: its bucket is at most the
    percentage, so raising 33 to 50 keeps everyone who was in (and 0 % holds nobody)."""
    return normalized_hash(identifier, group_id) <= percentage
