-- One row per finished call, written by the CDR writer once the channel is destroyed. Fully durable.
CREATE TABLE IF NOT EXISTS call_records (
    call_id             uuid PRIMARY KEY,
    node                text NOT NULL,
    channel_id          text NOT NULL,
    channel_name        text NOT NULL,
    caller_number       text NOT NULL,
    caller_name         text NOT NULL,
    extension           text NOT NULL,
    context             text NOT NULL,
    args                text[] NOT NULL,
    channel_created_at  timestamptz NOT NULL,
    broadcast_at        timestamptz NOT NULL,
    deadline            timestamptz,
    audience            text[] NOT NULL,
    audience_size       int NOT NULL,
    claims              int,
    winner              text,
    claimed_at          timestamptz,
    claim_latency_ms    double precision,
    handed_over_at      timestamptz,
    decision_latency_ms double precision,
    status              text NOT NULL CHECK (status IN ('SUCCESS', 'TIMEOUT', 'FAILED', 'ABANDONED')),
    reason              text NOT NULL,
    target              text,
    ended_at            timestamptz NOT NULL,
    duration_s          double precision NOT NULL,
    hangup_cause        int,
    hangup_cause_text   text,
    recorded_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS call_records_broadcast_at ON call_records (broadcast_at);
CREATE INDEX IF NOT EXISTS call_records_winner_broadcast_at ON call_records (winner, broadcast_at) WHERE winner IS NOT NULL;
