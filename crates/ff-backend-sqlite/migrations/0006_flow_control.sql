-- Schema 6: flow control. Each execution may carry a concurrency key, a
-- rate key and a fairness key (NULL: its namespace). `flow_policies` holds
-- the named policies of each namespace as JSON specs; `rate_buckets`,
-- `budget_usage` and `fair_credits` the state the claim keeps for them.
-- The same number on Postgres.
ALTER TABLE executions ADD COLUMN concurrency_key TEXT;
ALTER TABLE executions ADD COLUMN rate_key TEXT;
ALTER TABLE executions ADD COLUMN fairness_key TEXT;

-- What holds a slot: counted per key inside the claim.
CREATE INDEX executions_running_key
    ON executions (namespace, concurrency_key, lease_until)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;

-- A fair-share lane's candidates, per fairness key in claim order.
CREATE INDEX executions_fair_claim
    ON executions (namespace, lane, fairness_key, priority DESC, ready_at, id)
    WHERE state IN ('ready', 'scheduled');

CREATE TABLE flow_policies (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
) WITHOUT ROWID;

CREATE TABLE rate_buckets (
    namespace TEXT NOT NULL,
    key       TEXT NOT NULL,
    level     INTEGER NOT NULL,
    at        INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;

CREATE TABLE budget_usage (
    namespace TEXT NOT NULL,
    policy    TEXT NOT NULL,
    usage     TEXT NOT NULL,
    PRIMARY KEY (namespace, policy)
) WITHOUT ROWID;

-- The fairness keys each lane has seen, registered as executions are
-- stored, so a fair-share claim knows the keys without scanning for them.
CREATE TABLE fair_keys (
    namespace TEXT NOT NULL,
    lane      TEXT NOT NULL,
    key       TEXT NOT NULL,
    PRIMARY KEY (namespace, lane, key)
) WITHOUT ROWID;

CREATE TRIGGER executions_fair_keys
    AFTER INSERT ON executions
    WHEN NEW.fairness_key IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO fair_keys (namespace, lane, key)
        VALUES (NEW.namespace, NEW.lane, NEW.fairness_key);
END;

CREATE TABLE fair_credits (
    namespace TEXT NOT NULL,
    lane      TEXT NOT NULL,
    credits   TEXT NOT NULL,
    PRIMARY KEY (namespace, lane)
) WITHOUT ROWID;
