"""The schema, as numbered migrations applied in one transaction and recorded in a table.

Add a migration by decorating a function with the next number; never edit an applied one.

>>> sorted(MIGRATIONS)[:1]
[1]
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from store import audit
from store._clock import now
from store.db import Database, quote

Migration = Callable[[Database], None]
MIGRATIONS: dict[int, tuple[str, Migration]] = {}
FIRST = 1  # the transaction that applies it creates the store


def migration(number: int, name: str) -> Callable[[Migration], Migration]:
    """Register ``fn`` as migration ``number`` (numbers must be new)."""

    def register(fn: Migration) -> Migration:
        if number in MIGRATIONS:
            raise ValueError(f"migration {number} is registered twice")
        MIGRATIONS[number] = (name, fn)
        return fn

    return register


def pending(db: Database) -> list[int]:
    """The migrations not yet recorded (all of them for an empty database); reads only."""
    try:
        done = {n for (n,) in db.all("SELECT number FROM schema_migrations")}
    except duckdb.CatalogException:
        done = set()
    return [n for n in sorted(MIGRATIONS) if n not in done]


def apply(db: Database) -> list[int]:
    """Apply the migrations not yet recorded, in order; return their numbers."""
    with db.atomic():
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations("
            "number INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at VARCHAR NOT NULL)"
        )
        done = {n for (n,) in db.all("SELECT number FROM schema_migrations")}
        applied = []
        for number in sorted(MIGRATIONS):
            if number in done:
                continue
            name, fn = MIGRATIONS[number]
            fn(db)
            db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)", [number, name, now()])
            applied.append(number)
    return applied


@migration(1, "initial schema")
def _initial(db: Database) -> None:
    for ddl in (
        "CREATE TABLE store_meta(key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        "CREATE SCHEMA data",
        """CREATE TABLE datasets(
            name VARCHAR PRIMARY KEY, subject_column VARCHAR NOT NULL,
            columns_json VARCHAR NOT NULL, source_kind VARCHAR NOT NULL,
            n_rows BIGINT NOT NULL, created_at VARCHAR NOT NULL)""",
        """CREATE TABLE model_versions(
            model VARCHAR NOT NULL, version INTEGER NOT NULL, dataset VARCHAR NOT NULL,
            estimator VARCHAR NOT NULL, params_json VARCHAR NOT NULL, seed BIGINT,
            code_version VARCHAR NOT NULL, features_json VARCHAR NOT NULL,
            label VARCHAR NOT NULL, n_rows BIGINT NOT NULL, fit_sha256 VARCHAR NOT NULL,
            status VARCHAR NOT NULL, checkpoint_revision INTEGER NOT NULL,
            checkpoint_path VARCHAR, checkpoint_sha256 VARCHAR, created_at VARCHAR NOT NULL,
            PRIMARY KEY (model, version))""",
        "CREATE TABLE version_rows(model VARCHAR, version INTEGER, row_id BIGINT)",
        """CREATE TABLE forget_log(
            model VARCHAR NOT NULL, version INTEGER NOT NULL, revision INTEGER NOT NULL,
            request_id VARCHAR NOT NULL, row_ids BIGINT[] NOT NULL, logged_at VARCHAR NOT NULL,
            PRIMARY KEY (model, version, revision))""",
        """CREATE TABLE erasure_requests(
            request_id VARCHAR PRIMARY KEY, subject_key VARCHAR NOT NULL,
            legal_ground VARCHAR NOT NULL, status VARCHAR NOT NULL,
            received_at VARCHAR NOT NULL, erased_at VARCHAR, completed_at VARCHAR,
            datasets_json VARCHAR NOT NULL, rows_erased BIGINT NOT NULL)""",
        """CREATE TABLE erasure_actions(
            request_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version INTEGER NOT NULL,
            revision INTEGER NOT NULL, action VARCHAR NOT NULL, guarantee VARCHAR,
            forget_seconds DOUBLE, evidence_json VARCHAR NOT NULL, recorded_at VARCHAR NOT NULL,
            PRIMARY KEY (model, version, revision))""",
        """CREATE TABLE audit_log(
            seq BIGINT PRIMARY KEY, ts VARCHAR NOT NULL, kind VARCHAR NOT NULL,
            payload_json VARCHAR NOT NULL, prev_hash VARCHAR NOT NULL,
            entry_hash VARCHAR NOT NULL)""",
    ):
        db.execute(ddl)
    db.execute("INSERT INTO store_meta VALUES ('next_row_id', '1')")


@migration(2, "actions in forget_log, retrains, purge time and evidence sampling of requests")
def _retrains(db: Database) -> None:
    # A request is "pending" while a model version it touched awaits a retrain, "erased" once
    # no version waits, "completed" once it is also purged; purged_at records the purge alone.
    # What a version did for a request is kept on its forget_log entry (written by the same
    # statement: each costs ~1 ms); erasure_actions remains as a view of it.
    outcome = ("action", "guarantee", "forget_seconds", "evidence_json", "recorded_at")
    types = ("VARCHAR", "VARCHAR", "DOUBLE", "VARCHAR", "VARCHAR")
    for column, kind in zip(outcome, types, strict=True):
        db.execute(f"ALTER TABLE forget_log ADD COLUMN {column} {kind}")
    db.execute(
        "UPDATE forget_log f SET "
        + ", ".join(f"{c} = a.{c}" for c in outcome)
        + " FROM erasure_actions a WHERE a.model = f.model AND a.version = f.version "
        "AND a.revision = f.revision"
    )
    for ddl in (
        "DROP TABLE erasure_actions",
        "CREATE VIEW erasure_actions AS SELECT request_id, model, version, revision, action, "
        "guarantee, forget_seconds, evidence_json, recorded_at FROM forget_log "
        "WHERE action IS NOT NULL",
        "ALTER TABLE erasure_requests ADD COLUMN purged_at VARCHAR",
        "ALTER TABLE erasure_requests ADD COLUMN evidence_rate DOUBLE",
        "ALTER TABLE erasure_requests ADD COLUMN evidence_sampled BOOLEAN",
        "UPDATE erasure_requests SET purged_at = completed_at WHERE status = 'completed'",
        """CREATE TABLE retrains(
            model VARCHAR NOT NULL, version INTEGER NOT NULL, revision INTEGER NOT NULL,
            outcome VARCHAR NOT NULL, request_ids VARCHAR[] NOT NULL, training_rows BIGINT,
            artifact_sha256 VARCHAR, fit_seconds DOUBLE, reason VARCHAR,
            retrained_at VARCHAR NOT NULL, PRIMARY KEY (model, version, revision))""",
    ):
        db.execute(ddl)


@migration(3, "deferred retrain evidence: the request's evidence status")
def _deferred_evidence(db: Database) -> None:
    # "scheduled" while a deferred retrain check of the request awaits its result (each check's
    # own state is its forget_log evidence), "recorded" once all are in; NULL when none was
    # deferred. The erasure writes it with its request row: no statement more.
    db.execute("ALTER TABLE erasure_requests ADD COLUMN evidence_status VARCHAR")


@migration(4, "keyed audit chain: entries re-chained with HMAC, the head sealed outside the log")
def _keyed_audit(db: Database) -> None:
    # The store sets the audit key before it migrates; the re-chaining is recorded in the log
    # itself (an "audit.keyed" entry, with the unkeyed head and whether that chain verified).
    audit.rekey(db)


@migration(5, "forget_log counts forgotten rows, so that purged entries can drop their ids")
def _rows_forgotten(db: Database) -> None:
    # A forget_log entry needs its row ids until the model's checkpoint includes it (replay
    # after a crash); after that they are only linkage to erased people, and the purge clears
    # them. The lineage keeps the count.
    db.execute("ALTER TABLE forget_log ADD COLUMN rows_forgotten BIGINT")
    db.execute("UPDATE forget_log SET rows_forgotten = len(row_ids)")


@migration(6, "who asked for an erasure and which forget instance handled it")
def _requesters(db: Database) -> None:
    # NULL for requests made before they were recorded (the report says so).
    db.execute("ALTER TABLE erasure_requests ADD COLUMN requested_by VARCHAR")
    db.execute("ALTER TABLE erasure_requests ADD COLUMN handled_by VARCHAR")


@migration(7, "an index on each dataset's subject column")
def _subject_indexes(db: Database) -> None:
    # as store.data.index_subjects does for new datasets
    for name, column in db.all("SELECT name, subject_column FROM datasets"):
        db.execute(
            f"CREATE INDEX IF NOT EXISTS {quote('subjects_' + name)} "
            f"ON data.{quote(name)}({quote(column)})"
        )


@migration(8, "model aliases (routing, canary, shadow) and the record of deleted versions")
def _aliases(db: Database) -> None:
    # An alias routes a model name to a split of ready versions ({version: weight}, weights
    # summing to 1) and optionally a shadow version; see store.aliases. A deleted version leaves
    # a tombstone so that its number is never given to a new version (lineage, forget_log and
    # audit entries keep naming it); retention is a store_meta setting. IF NOT EXISTS, as in
    # migration 7: a store whose migration records were rewound keeps its tables.
    for ddl in (
        """CREATE TABLE IF NOT EXISTS model_aliases(
            model VARCHAR NOT NULL, alias VARCHAR NOT NULL, split_json VARCHAR NOT NULL,
            shadow INTEGER, set_at VARCHAR NOT NULL, set_by VARCHAR,
            PRIMARY KEY (model, alias))""",
        """CREATE TABLE IF NOT EXISTS deleted_versions(
            model VARCHAR NOT NULL, version INTEGER NOT NULL, deleted_at VARCHAR NOT NULL,
            deleted_by VARCHAR, PRIMARY KEY (model, version))""",
    ):
        db.execute(ddl)


@migration(9, "exported copies of models: who received which revision (Art. 19 recipients)")
def _exports(db: Database) -> None:
    # One row per export (store.exports); the bytes are never kept, their SHA-256 is.
    db.execute(
        """CREATE TABLE IF NOT EXISTS exports(
            export_id VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, version INTEGER NOT NULL,
            revision INTEGER NOT NULL, recipient VARCHAR NOT NULL, format VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL, size BIGINT NOT NULL, exported_at VARCHAR NOT NULL,
            exported_by VARCHAR)"""
    )


@migration(10, "retention policies (Art. 5(1)(e)) and the cutoff of a retention request")
def _retention(db: Database) -> None:
    # A dataset's policy (store.retention): rows whose time column is before now minus the
    # period expire through the erasure path; such a request records its cutoff.
    db.execute(
        """CREATE TABLE IF NOT EXISTS retention_policies(
            dataset VARCHAR PRIMARY KEY, time_column VARCHAR NOT NULL, period VARCHAR NOT NULL,
            set_at VARCHAR NOT NULL, set_by VARCHAR)"""
    )
    db.execute("ALTER TABLE erasure_requests ADD COLUMN IF NOT EXISTS expired_before VARCHAR")


@migration(11, "purposes of models, objections by purpose (Art. 21) and restrictions (Art. 18)")
def _purposes(db: Database) -> None:
    # A version's purpose is NULL for "unspecified" (versions trained before purposes, or
    # without one): no objection touches them. store.purposes keeps the rest: the purposes
    # declared or trained for; each objection (subject key, purpose); each restriction and the
    # training rows each version set aside for it (row ids of data that stays: the lift puts
    # them back). A forget_log entry's action "learn" is a version taking rows back.
    db.execute("ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS purpose VARCHAR")
    db.execute("ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS rows_withheld BIGINT")
    for ddl in (
        """CREATE TABLE IF NOT EXISTS purposes(
            purpose VARCHAR PRIMARY KEY, declared_at VARCHAR NOT NULL, declared_by VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS objections(
            objection_id VARCHAR PRIMARY KEY, subject_key VARCHAR NOT NULL,
            purpose VARCHAR NOT NULL, objected_at VARCHAR NOT NULL, objected_by VARCHAR,
            rows BIGINT NOT NULL, UNIQUE (subject_key, purpose))""",
        """CREATE TABLE IF NOT EXISTS restrictions(
            restriction_id VARCHAR PRIMARY KEY, subject_key VARCHAR NOT NULL,
            since VARCHAR NOT NULL, restricted_by VARCHAR, rows BIGINT NOT NULL,
            lifted_at VARCHAR, lifted_by VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS restricted_rows(
            restriction_id VARCHAR NOT NULL, model VARCHAR NOT NULL, version INTEGER NOT NULL,
            dataset VARCHAR NOT NULL, row_id BIGINT NOT NULL)""",
    ):
        db.execute(ddl)
