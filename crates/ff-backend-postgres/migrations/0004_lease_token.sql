-- Schema 4: the lease token, the secret of the current (or last) lease as
-- 32 hex digits, drawn by the claim statement. Applied once, inside the
-- migration transaction, under the migration lock.
ALTER TABLE executions ADD COLUMN lease_token text;
