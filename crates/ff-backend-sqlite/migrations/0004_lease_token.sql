-- Schema 4: the lease token, the secret of the current (or last) lease as
-- 32 hex digits. Number 3 is Postgres-only; a change to both backends takes
-- the same number on each. Applied once, inside the migration transaction.
ALTER TABLE executions ADD COLUMN lease_token TEXT;
