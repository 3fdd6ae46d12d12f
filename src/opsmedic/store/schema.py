"""The store's tables as SQLAlchemy Core objects; migrations must produce exactly these."""

from __future__ import annotations

import sqlalchemy as sa

# Fixed constraint and index names, so that migrations can refer to them on every backend.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Epoch seconds: DOUBLE PRECISION on PostgreSQL, REAL (8 bytes) on SQLite.
Time = sa.Double

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("resource", sa.String, nullable=False),
    sa.Column("host", sa.String, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    # JSON, so that float, str and None each come back as what they were.
    sa.Column("value", sa.JSON, nullable=True),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    # Not indexed: alerts are followed through incident_alerts; an index here cost every
    # insert about a tenth of its time and served no query.
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("time", Time, nullable=False, index=True),
    sa.Column("payload", sa.JSON, nullable=False),
    # Not indexed: one index less on the hottest insert; incidents are read by their own rows.
    sa.Column("incident_id", sa.String, nullable=True),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("rule", sa.String, nullable=False),
    sa.Column("event_id", sa.String, sa.ForeignKey("events.id"), nullable=False, index=True),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("fingerprint", sa.String, nullable=False),
    sa.Column("actions", sa.JSON, nullable=False),
    sa.Column("queue", sa.String, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("state", sa.String, nullable=False, index=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("steps", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False, index=True),
    sa.Column("started_at", Time, nullable=True),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("incident_id", sa.String, nullable=True, index=True),
    # The interrupted run this one re-runs; unique: recovery re-runs a run at most once.
    sa.Column("rerun_of", sa.String, nullable=True, index=True, unique=True),
    # Who started a manual run (engine/manual.py); "" for the engine's runs.
    sa.Column("started_by", sa.String, nullable=False, server_default=""),
    sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()),
    # The engine running it, and until when its claim holds unrenewed (store/run_owner.py):
    # recovery takes only runs whose owner is gone. NULL: claimed before owners were kept.
    sa.Column("owner", sa.String, nullable=True),
    sa.Column("lease_until", Time, nullable=True),
    sa.Index(None, "rule", "created_at"),
)

# Incidents, their member alerts and their timeline are written by the engine in the same
# transaction as the events that change them; no foreign keys, so pruning stays simple.
incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("key", sa.String, nullable=False, index=True),
    sa.Column("title", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False, index=True),
    sa.Column("opened_at", Time, nullable=False, index=True),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("mitigated_at", Time, nullable=True),
    sa.Column("resolved_at", Time, nullable=True),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("flaps", sa.Integer, nullable=False, server_default="0"),
    sa.Column("flapping", sa.Boolean, nullable=False, server_default=sa.false()),
    # What people did (lifecycle.py, migration 0009).
    sa.Column("acknowledged_at", Time, nullable=True),
    sa.Column("acknowledged_by", sa.String, nullable=False, server_default=""),
    sa.Column("assignee", sa.String, nullable=False, server_default=""),
    sa.Column("closed_at", Time, nullable=True),
    sa.Column("human_actions", sa.Integer, nullable=False, server_default="0"),
    sa.Column("human_at", Time, nullable=True, index=True),
)

incident_alerts = sa.Table(
    "incident_alerts",
    metadata,
    sa.Column("incident_id", sa.String, primary_key=True),
    sa.Column("fingerprint", sa.String, primary_key=True),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("first_seen", Time, nullable=False),
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    # On SQLite the rows live in the primary key's own tree: one insert, not two, per alert.
    sqlite_with_rowid=False,
)

timeline = sa.Table(
    "timeline",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String, nullable=False, index=True),
    sa.Column("time", Time, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("ref", sa.String, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=True),  # an investigation's outputs, bounded
)
SUPPRESSED_LINES = "kind = 'suppressed'"
# The coalesced lines of suppressed decisions are counted up in place, found by their ref
# (unique): indexed alone, so that neither another line's insert nor a big incident's
# timeline (a scan of its every line per update) pays for it.
sa.Index(
    "ix_timeline_suppressed_ref",
    timeline.c.ref,
    sqlite_where=sa.text(SUPPRESSED_LINES),
    postgresql_where=sa.text(SUPPRESSED_LINES),
)

# API tokens: only a SHA-256 of the secret is kept (tokens are 256-bit random, so a slow
# password hash would add nothing but latency to every request).
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False, unique=True),
    sa.Column("hash", sa.String, nullable=False, unique=True),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("revoked_at", Time, nullable=True),
)

# Where each poller stopped reading its feed, so a restart reads nothing twice.
cursors = sa.Table(
    "cursors",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

# The states in which a deployment is still being driven (DeploymentState.finished is False).
ACTIVE_DEPLOYMENT = "state IN ('started', 'verifying')"

# Deployments of the release controller: one row per version put into an environment.
deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("service", sa.String, nullable=False),
    sa.Column("env", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("previous_version", sa.String, nullable=False),
    sa.Column("strategy", sa.String, nullable=False),
    sa.Column("requested_by", sa.String, nullable=False),
    sa.Column("forced", sa.Boolean, nullable=False),
    sa.Column("state", sa.String, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("checks", sa.JSON, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("finished_at", Time, nullable=True),
    sa.Column("last_known_good", sa.Boolean, nullable=False),
    sa.Column("rolled_back_to", sa.String, nullable=False),
    sa.Column("owner", sa.String, nullable=False),
    sa.Column("heartbeat_at", Time, nullable=True),
    sa.Index(None, "service", "env", "created_at"),
    # One deployment at a time per service and environment: a second insert while one is
    # active fails on this index, atomically, on SQLite and PostgreSQL alike.
    sa.Index(
        "ix_deployments_one_active",
        "service",
        "env",
        unique=True,
        sqlite_where=sa.text(ACTIVE_DEPLOYMENT),
        postgresql_where=sa.text(ACTIVE_DEPLOYMENT),
    ),
)

# Feature flags: the current document of each flag, and every change ever made to one. The
# store is their single source of truth: Redis and the clients' caches only carry copies.
flags = sa.Table(
    "flags",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("doc", sa.JSON, nullable=False),
    # Bumped by every change; a writer that read version n writes only WHERE version = n.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("updated_by", sa.String, nullable=False),
)

flag_changes = sa.Table(
    "flag_changes",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("before", sa.JSON, nullable=True),  # NULL: the change created the flag
    sa.Column("after", sa.JSON, nullable=False),
    sa.Column("by", sa.String, nullable=False),  # "cli alice", "api deploy-bot", "rule NAME"
    sa.Column("run_id", sa.String, nullable=True),  # the rule's run that made the change
    sa.Column("at", Time, nullable=False, index=True),
)

# A run's wait for approval before one step (the run itself is `waiting_approval`), and the
# decision that ended it; keyed by run and step, so a decision cannot serve another wait.
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("run_id", sa.String, primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True),
    sa.Column("action", sa.String, nullable=False),
    sa.Column("requested_at", Time, nullable=False),
    sa.Column("deadline", Time, nullable=False),
    sa.Column("on_timeout", sa.String, nullable=False),
    sa.Column("incident_id", sa.String, nullable=False),
    # NULL while it waits; set once, by a conditional update (approval_rows.decide).
    sa.Column("decision", sa.String, nullable=True),
    sa.Column("decided_by", sa.String, nullable=False),
    sa.Column("decided_at", Time, nullable=True),
    sa.Column("comment", sa.Text, nullable=False),
    # A digest of the rule's steps when the run parked: an approval resumes only the steps it
    # was asked for (NULL: parked before revision 0014, only the action names are compared).
    sa.Column("digest", sa.String, nullable=True),
)

# Silences (store/silence_rows.py): expiring one moves `ends_at` to that moment; `updated_at`
# lets a running engine see any change by reading one count() and sum() (engine/muting.py).
silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String, primary_key=True),
    sa.Column("matchers", sa.JSON, nullable=False),  # ["host=web-1", "labels.env=~prod|dr"]
    sa.Column("starts_at", Time, nullable=False),
    sa.Column("ends_at", Time, nullable=False, index=True),
    sa.Column("created_by", sa.String, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
)

# Decisions that started no run (throttled, waiting for `for:`, held…), compactly: one row per
# rule, alert and outcome, counted, however many events repeat it (docs/decisions.md).
suppressed = sa.Table(
    "suppressed",
    metadata,
    sa.Column("rule", sa.String, primary_key=True),
    sa.Column("fingerprint", sa.String, primary_key=True),
    sa.Column("outcome", sa.String, primary_key=True),
    sa.Column("target", sa.String, nullable=False),
    sa.Column("incident_id", sa.String, nullable=True),
    sa.Column("count", sa.BigInteger, nullable=False),  # a flood can pass 2**31
    # When opsmedic recorded the first and the last decision (not the events' own times: a
    # long-firing alert's repeats keep their old start time); `--since` and prune read these.
    sa.Column("first_seen", Time, nullable=False),
    # Not indexed: every repeat moves it (an index entry rewritten per upsert, ~a quarter of
    # its cost); the rows are few, so listing and pruning read them all.
    sa.Column("last_seen", Time, nullable=False),
    sa.Column("last_event_id", sa.String, nullable=False),
    # The first event counted ("" in a row older than revision 0016): with the last one, the
    # span of event ids (ordered by receipt) that `explain` finds an earlier event in.
    sa.Column("first_event_id", sa.String, nullable=False, server_default=""),
    sa.Column("last_event_time", Time, nullable=False),  # the last event's own time
    sa.Column("detail", sa.Text, nullable=False),
    sqlite_with_rowid=False,
)

# Post-mortem drafts (reports/postmortem.py): one per incident, no foreign key (pruning
# removes it with its incident); `trigger` says who asked: "auto" (resolved past the reopen
# window) or "on_demand" (`opsmedic report postmortem`), which rewrites it.
postmortems = sa.Table(
    "postmortems",
    metadata,
    sa.Column("incident_id", sa.String, primary_key=True),
    sa.Column("markdown", sa.Text, nullable=False),
    sa.Column("generated_at", Time, nullable=False),
    sa.Column("trigger", sa.String, nullable=False),
)

# SLI samples, per SLO and minute (store/slo_rows.py): counted up in place, so a month of one
# SLO is at most 44,640 small rows however many probes and events fed it (docs/slo.md).
slo_samples = sa.Table(
    "slo_samples",
    metadata,
    sa.Column("slo", sa.String, primary_key=True),
    sa.Column("minute", sa.BigInteger, primary_key=True),  # epoch seconds // 60
    sa.Column("good", sa.BigInteger, nullable=False),
    sa.Column("total", sa.BigInteger, nullable=False),
    # Of them, samples whose time was too far from the clock (a jump, an alert re-sent with its
    # start time): counted in the minute they arrived instead.
    sa.Column("skewed", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
