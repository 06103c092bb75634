-- Schema 3: a completion notification too long for a list of seqs carries
-- their range (`lo-hi`) instead of nothing, so listeners read just those
-- entries rather than the oldest undispatched ones.
CREATE OR REPLACE FUNCTION ff_notify_completions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seqs TEXT;
BEGIN
    SELECT CASE WHEN count(*) <= 400 THEN string_agg(seq::text, ',')
                ELSE min(seq)::text || '-' || max(seq)::text END
      INTO seqs FROM recorded;
    IF seqs IS NOT NULL THEN
        PERFORM pg_notify('ff_done_' || TG_TABLE_SCHEMA, seqs);
    END IF;
    RETURN NULL;
END
$$;
