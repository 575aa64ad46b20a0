-- Call records (CDR and live state), and a PBX-wide caller ID for outside calls.
ALTER TABLE pbx ADD COLUMN default_caller_id_name TEXT;
ALTER TABLE pbx ADD COLUMN default_caller_id_number TEXT;

-- No foreign keys to extensions: a call record outlives a deleted extension.
CREATE TABLE call (
    id TEXT PRIMARY KEY NOT NULL,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    sip_call_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    caller_extension_id TEXT,
    caller_number TEXT NOT NULL,
    caller_name TEXT,
    callee_extension_id TEXT,
    callee_number TEXT NOT NULL,
    callee_name TEXT,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    answered_by TEXT,
    disposition TEXT,
    hangup_side TEXT,
    end_reason TEXT,
    forwarded_to TEXT,
    node_id TEXT NOT NULL
);
CREATE INDEX call_pbx_started_idx ON call (pbx_id, started_at);
CREATE INDEX call_state_idx ON call (state);
