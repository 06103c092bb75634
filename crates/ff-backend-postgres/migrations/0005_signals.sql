-- Schema 5: suspension and signals. `wait` holds the execution's
-- waitpoints, signals and suspensions as JSON; `suspend_timeout_at` is
-- when the suspension in force times out, for the timeout scan's partial
-- index. `waitpoint_keys` is the keyring that signs waitpoint tokens: the
-- newest key without `verify_until` signs, every key verifies until its
-- `verify_until`. The same number on SQLite.
ALTER TABLE executions ADD COLUMN wait text;
ALTER TABLE executions ADD COLUMN suspend_timeout_at bigint;

CREATE INDEX executions_suspend_timeout
    ON executions (suspend_timeout_at)
    WHERE state = 'suspended' AND suspend_timeout_at IS NOT NULL;

CREATE TABLE waitpoint_keys (
    kid          text PRIMARY KEY,
    secret       text NOT NULL,
    created_at   bigint NOT NULL,
    verify_until bigint
);
