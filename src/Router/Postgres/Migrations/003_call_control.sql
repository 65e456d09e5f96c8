-- Call control (README "Call control"): a controlled call's row says so, when its caller was answered and how the
-- control ended; each channel the app created has a row of its own, linked to the call by parent_call_id.
ALTER TABLE call_records
    ADD COLUMN IF NOT EXISTS controlled     boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS answered_at    timestamptz,
    ADD COLUMN IF NOT EXISTS control_ending text,
    ADD COLUMN IF NOT EXISTS parent_call_id uuid;
CREATE INDEX IF NOT EXISTS call_records_parent_call_id ON call_records (parent_call_id) WHERE parent_call_id IS NOT NULL;
