-- API keys: only a SHA-256 of each key is kept; `prefix` (the first
-- characters of the key, not secret) finds the row to compare against.
CREATE TABLE api_key (
    id         BIGSERIAL PRIMARY KEY,
    name       TEXT        NOT NULL,
    prefix     TEXT        NOT NULL,
    key_sha256 TEXT        NOT NULL UNIQUE,
    scopes     TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
CREATE INDEX api_key_prefix ON api_key (prefix);
