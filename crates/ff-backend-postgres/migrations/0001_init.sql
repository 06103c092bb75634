-- Schema 1: the meta table, executions and their completion outbox.
-- Applied once, inside the migration transaction, in the backend's schema
-- (the connection's search_path); never edited after release (a change is a
-- new numbered file).

-- Settings fixed at first connect: schema_version, partitions.
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per execution, a column per field of ff_core::Execution. The spec
-- columns (namespace .. node_key) are written once at submit; the state
-- columns (state .. attempts) by every transition. payload, result and error
-- hold the caller's text verbatim; tags, retry and attempts are JSON written
-- by this crate. `version` grows by one with every write: an update names
-- the version it read, so a concurrent writer's change is never overwritten.
CREATE TABLE executions (
    id                 UUID    NOT NULL PRIMARY KEY,
    namespace          TEXT    NOT NULL,
    lane               TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    payload            TEXT    NOT NULL,
    priority           INTEGER NOT NULL,
    capabilities       TEXT[]  NOT NULL,
    tags               TEXT    NOT NULL,
    idempotency_key    TEXT,
    retry              TEXT    NOT NULL,
    lease_ms           BIGINT  NOT NULL,
    attempt_timeout_ms BIGINT,
    deadline           BIGINT,
    run_at             BIGINT,
    flow_id            UUID,
    node_key           TEXT,
    state              TEXT    NOT NULL,
    attempt            BIGINT  NOT NULL,
    lease_epoch        BIGINT  NOT NULL,
    attempts_allowed   BIGINT  NOT NULL,
    releases           BIGINT  NOT NULL,
    reuse_attempt      BOOLEAN NOT NULL,
    lease_until        BIGINT,
    attempt_deadline   BIGINT,
    worker_id          TEXT,
    ready_at           BIGINT  NOT NULL,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL,
    finished_at        BIGINT,
    result             TEXT,
    error              TEXT,
    attempts           TEXT    NOT NULL,
    version            BIGINT  NOT NULL DEFAULT 0
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

-- One row per terminal transition, written in the transition's statement.
-- The identity keeps seq increasing and never reused, even after a trim.
CREATE TABLE outbox (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id  UUID    NOT NULL,
    namespace     TEXT    NOT NULL,
    flow_id       UUID,
    node_key      TEXT,
    outcome       TEXT    NOT NULL,
    attempt       BIGINT  NOT NULL,
    committed_at  BIGINT  NOT NULL,
    dispatched_at BIGINT
);

-- Undispatched entries in commit order (the reconciler's scan).
CREATE INDEX outbox_undispatched
    ON outbox (seq)
    WHERE dispatched_at IS NULL;

-- Wake-ups. NOTIFY is transactional: a listener hears of a change only once
-- it has committed. Channel names carry the schema, so schemas sharing a
-- database never wake each other.

-- "Work may be claimable": one notification per transaction that made an
-- execution ready (Postgres folds identical notifications of a transaction).
CREATE FUNCTION ff_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ff_work_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END
$$;

CREATE TRIGGER executions_ready_inserted
    AFTER INSERT ON executions
    FOR EACH ROW WHEN (NEW.state = 'ready')
    EXECUTE FUNCTION ff_notify_work();

CREATE TRIGGER executions_became_ready
    AFTER UPDATE OF state ON executions
    FOR EACH ROW WHEN (NEW.state = 'ready' AND OLD.state <> 'ready')
    EXECUTE FUNCTION ff_notify_work();

-- "Completions committed": one notification per statement that wrote outbox
-- entries, carrying their seqs (ids only), or nothing when there are too
-- many to fit, which tells listeners to read every undispatched entry.
CREATE FUNCTION ff_notify_completions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seqs TEXT;
BEGIN
    SELECT CASE WHEN count(*) <= 400 THEN string_agg(seq::text, ',') ELSE '' END
      INTO seqs FROM recorded;
    IF seqs IS NOT NULL THEN
        PERFORM pg_notify('ff_done_' || TG_TABLE_SCHEMA, seqs);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_recorded
    AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS recorded
    FOR EACH STATEMENT
    EXECUTE FUNCTION ff_notify_completions();
