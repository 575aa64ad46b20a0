-- Tenants, API keys and extensions. Timestamps are milliseconds since the Unix epoch.
CREATE TABLE pbx (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL UNIQUE,
    sip_domain TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE api_key (
    id TEXT PRIMARY KEY NOT NULL,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE extension (
    id TEXT PRIMARY KEY NOT NULL,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    caller_id_name TEXT,
    caller_id_number TEXT,
    voicemail_enabled BOOLEAN NOT NULL,
    forwarding_number TEXT,
    forwarding_ring_timeout INTEGER NOT NULL,
    manual_presence TEXT,
    sip_username TEXT NOT NULL UNIQUE,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (pbx_id, number),
    CONSTRAINT extension_no_self_forwarding
        CHECK (forwarding_number IS NULL OR forwarding_number <> number)
);
