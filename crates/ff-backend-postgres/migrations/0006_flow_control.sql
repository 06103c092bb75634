-- Schema 6: flow control. Each execution may carry a concurrency key, a
-- rate key and a fairness key (NULL: its namespace). `flow_policies` holds
-- the named policies of each namespace as JSON specs; `rate_buckets`,
-- `budget_usage` and `fair_credits` the state the claim keeps for them.
-- The same number on SQLite.
ALTER TABLE executions ADD COLUMN concurrency_key text;
ALTER TABLE executions ADD COLUMN rate_key text;
ALTER TABLE executions ADD COLUMN fairness_key text;

-- What holds a slot: counted per key inside the claim.
CREATE INDEX executions_running_key
    ON executions (namespace, concurrency_key, lease_until)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;

-- A fair-share lane's candidates, per fairness key in claim order.
CREATE INDEX executions_fair_claim
    ON executions (namespace, lane, (COALESCE(fairness_key, namespace)), priority DESC,
                   ready_at, id)
    WHERE state IN ('ready', 'scheduled');

CREATE TABLE flow_policies (
    namespace  text NOT NULL,
    name       text NOT NULL,
    version    bigint NOT NULL,
    spec       text NOT NULL,
    updated_at bigint NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE rate_buckets (
    namespace text NOT NULL,
    key       text NOT NULL,
    level     bigint NOT NULL,
    at        bigint NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE budget_usage (
    namespace text NOT NULL,
    policy    text NOT NULL,
    usage     text NOT NULL,
    PRIMARY KEY (namespace, policy)
);

-- The fairness keys each lane has seen, registered as executions are
-- stored, so a fair-share claim knows the keys without scanning for them.
CREATE TABLE fair_keys (
    namespace text NOT NULL,
    lane      text NOT NULL,
    key       text NOT NULL,
    PRIMARY KEY (namespace, lane, key)
);

CREATE FUNCTION ff_register_fair_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO fair_keys (namespace, lane, key)
        SELECT DISTINCT namespace, lane, fairness_key FROM stored
        WHERE fairness_key IS NOT NULL
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER executions_fair_keys
    AFTER INSERT ON executions
    REFERENCING NEW TABLE AS stored
    FOR EACH STATEMENT EXECUTE FUNCTION ff_register_fair_keys();

CREATE TABLE fair_credits (
    namespace text NOT NULL,
    lane      text NOT NULL,
    credits   text NOT NULL,
    PRIMARY KEY (namespace, lane)
);

-- A limited execution leaving running frees its slot; a policy changed or
-- a budget started over may free work: each wakes waiting claims.
CREATE TRIGGER executions_slot_freed
    AFTER UPDATE OF state ON executions
    FOR EACH ROW WHEN (OLD.state = 'running' AND NEW.state <> 'running'
                       AND NEW.concurrency_key IS NOT NULL)
    EXECUTE FUNCTION ff_notify_work();

CREATE TRIGGER flow_policies_changed
    AFTER INSERT OR UPDATE OR DELETE ON flow_policies
    FOR EACH STATEMENT EXECUTE FUNCTION ff_notify_work();

CREATE TRIGGER budget_usage_changed
    AFTER INSERT OR UPDATE ON budget_usage
    FOR EACH STATEMENT EXECUTE FUNCTION ff_notify_work();
