-- Schema 2: flows, their nodes and edges, and the inputs a node receives.
-- Applied once, inside the migration transaction; never edited after release.

-- A flow node's parents' outcomes (JSON), fixed when it becomes ready.
ALTER TABLE executions ADD COLUMN inputs TEXT;

-- Blocked members of a flow, for the reconciler's scan.
CREATE INDEX executions_blocked
    ON executions (flow_id)
    WHERE state = 'blocked';

-- A flow's operations lock its row first (SELECT .. FOR UPDATE), so two
-- cascades into one fan-in, or a cascade and a cancel_flow, never interleave.
CREATE TABLE flows (
    id              UUID    NOT NULL PRIMARY KEY,
    namespace       TEXT    NOT NULL,
    idempotency_key TEXT,
    fail_fast       BOOLEAN NOT NULL,
    cancelled       BOOLEAN NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

-- Flow idempotency keys are scoped to the namespace.
CREATE UNIQUE INDEX flows_idempotency
    ON flows (namespace, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Lists: a namespace in id (creation) order.
CREATE INDEX flows_list
    ON flows (namespace, id);

-- One row per node; `position` keeps creation order. `join_spec` is the
-- ff_core Join as JSON; `spec_hash` tells a replayed dynamic add from a
-- conflicting one.
CREATE TABLE flow_nodes (
    flow_id       UUID    NOT NULL,
    key           TEXT    NOT NULL,
    execution_id  UUID    NOT NULL,
    join_spec     TEXT    NOT NULL,
    cancel_losers BOOLEAN NOT NULL,
    spec_hash     BIGINT  NOT NULL,
    position      BIGINT  NOT NULL,
    PRIMARY KEY (flow_id, key)
);

-- One row per edge; looked up from the parent (cascade) and from the child
-- (join evaluation).
CREATE TABLE flow_edges (
    flow_id   UUID   NOT NULL,
    from_key  TEXT   NOT NULL,
    to_key    TEXT   NOT NULL,
    condition TEXT   NOT NULL,
    position  BIGINT NOT NULL,
    PRIMARY KEY (flow_id, from_key, to_key)
);

CREATE INDEX flow_edges_into
    ON flow_edges (flow_id, to_key);
