-- Open broadcasts, shared by every router: rows live for seconds. UNLOGGED: no WAL, so a write costs no fsync; a
-- database crash empties the table, and the calls it held end through the adapter's own deadline fallback.
CREATE UNLOGGED TABLE IF NOT EXISTS call_sagas (
    correlation_id uuid PRIMARY KEY,
    version        int NOT NULL,
    current_state  text NOT NULL,
    data           text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS call_sagas_updated_at ON call_sagas (updated_at);
