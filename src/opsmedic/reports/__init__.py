"""Reports from the store: post-mortem drafts, on-call summaries, stats, release records, charts."""
