-- Schema 1: the meta table, executions and their completion outbox.
-- Applied once, inside the migration transaction; never edited after release
-- (a change is a new numbered file).

-- Settings fixed at first open: schema_version, partitions.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per execution, a column per field of ff_core::Execution. The spec
-- columns (namespace .. node_key) are written once at submit; the state
-- columns (state .. attempts) by every transition. payload, result and error
-- hold the caller's text verbatim; capabilities, tags, retry and attempts are
-- JSON written by this crate.
CREATE TABLE executions (
    id                 BLOB    NOT NULL PRIMARY KEY,
    namespace          TEXT    NOT NULL,
    lane               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    priority           INTEGER NOT NULL,
    capabilities       TEXT    NOT NULL,
    tags               TEXT    NOT NULL,
    idempotency_key    TEXT,
    retry              TEXT    NOT NULL,
    lease_ms           INTEGER NOT NULL,
    attempt_timeout_ms INTEGER,
    deadline           INTEGER,
    run_at             INTEGER,
    flow_id            BLOB,
    node_key           TEXT,
    state              TEXT    NOT NULL,
    attempt            INTEGER NOT NULL,
    lease_epoch        INTEGER NOT NULL,
    attempts_allowed   INTEGER NOT NULL,
    releases           INTEGER NOT NULL,
    reuse_attempt      INTEGER NOT NULL,
    lease_until        INTEGER,
    attempt_deadline   INTEGER,
    worker_id          TEXT,
    ready_at           INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    result             TEXT,
    error              TEXT,
    attempts           TEXT    NOT NULL
);

-- Claim order within a lane: priority (higher first), ready_at, id. Only
-- claimable states are indexed, so the index stays as small as the queue.
CREATE INDEX executions_claim
    ON executions (namespace, lane, priority DESC, ready_at, id)
    WHERE state IN ('ready', 'scheduled');

-- Lease expiry and attempt timeouts of running executions.
CREATE INDEX executions_lease_until
    ON executions (lease_until)
    WHERE state = 'running';
CREATE INDEX executions_attempt_deadline
    ON executions (attempt_deadline)
    WHERE state = 'running' AND attempt_deadline IS NOT NULL;

-- Due scheduled executions (promotion).
CREATE INDEX executions_scheduled
    ON executions (ready_at)
    WHERE state = 'scheduled';

-- Deadlines of non-terminal executions.
CREATE INDEX executions_deadline
    ON executions (deadline)
    WHERE deadline IS NOT NULL
      AND state NOT IN ('completed', 'failed', 'cancelled', 'skipped');

-- Idempotency keys are scoped to the namespace.
CREATE UNIQUE INDEX executions_idempotency
    ON executions (namespace, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Lists: a namespace in id (creation) order.
CREATE INDEX executions_list
    ON executions (namespace, id);

-- One row per terminal transition, written in the transition's transaction.
-- AUTOINCREMENT keeps seq increasing and never reused, even after a trim.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id  BLOB    NOT NULL,
    namespace     TEXT    NOT NULL,
    flow_id       BLOB,
    node_key      TEXT,
    outcome       TEXT    NOT NULL,
    attempt       INTEGER NOT NULL,
    committed_at  INTEGER NOT NULL,
    dispatched_at INTEGER
);

-- Undispatched entries in commit order (the reconciler's scan).
CREATE INDEX outbox_undispatched
    ON outbox (seq)
    WHERE dispatched_at IS NULL;
