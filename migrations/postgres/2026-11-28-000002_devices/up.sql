-- Devices: one row per registration binding, kept 30 days after it ends.
CREATE TABLE device (
    id TEXT PRIMARY KEY NOT NULL,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    extension_id TEXT NOT NULL REFERENCES extension (id) ON DELETE CASCADE,
    binding_key TEXT NOT NULL,
    instance_id TEXT,
    contact TEXT NOT NULL,
    transport TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    source_port INTEGER NOT NULL,
    user_agent TEXT,
    device_type TEXT NOT NULL,
    manufacturer TEXT,
    model TEXT,
    mac_address TEXT,
    call_id TEXT NOT NULL,
    cseq BIGINT NOT NULL,
    first_registered BIGINT NOT NULL,
    last_registered BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT,
    end_reason TEXT,
    node_id TEXT NOT NULL,
    UNIQUE (extension_id, binding_key)
);
CREATE INDEX device_pbx_idx ON device (pbx_id);
CREATE INDEX device_live_idx ON device (ended_at, expires_at);
