-- Mailbox settings (a mailbox exists for every extension with voicemail enabled; a
-- row here only once something differs from the defaults) and voicemail messages
-- (audio in a WAV file under the data directory).
CREATE TABLE mailbox (
    extension_id TEXT PRIMARY KEY NOT NULL REFERENCES extension (id) ON DELETE CASCADE,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    greeting_file TEXT,
    notify_email TEXT,
    pin_hash TEXT,
    max_message_seconds INTEGER NOT NULL,
    retention_days INTEGER NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE voicemail_message (
    id TEXT PRIMARY KEY NOT NULL,
    pbx_id TEXT NOT NULL REFERENCES pbx (id) ON DELETE CASCADE,
    extension_id TEXT NOT NULL REFERENCES extension (id) ON DELETE CASCADE,
    caller_number TEXT NOT NULL,
    caller_name TEXT,
    duration_ms BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    heard_at BIGINT,
    audio_file TEXT NOT NULL
);
CREATE INDEX voicemail_message_extension_idx ON voicemail_message (extension_id, created_at);
