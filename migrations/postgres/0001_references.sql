-- Labelled reference texts and their embeddings: the source of truth from
-- which the nearest-neighbour index is rebuilt.
CREATE TABLE reference (
    id                 BIGSERIAL PRIMARY KEY,
    text               TEXT        NOT NULL,
    text_sha256        TEXT        NOT NULL UNIQUE,
    label              TEXT        NOT NULL CHECK (label IN ('human', 'machine')),
    model              TEXT,
    family             TEXT,
    source             TEXT,
    domain             TEXT,
    attack             TEXT,
    lang               TEXT,
    group_key          TEXT,
    embedding          BYTEA       NOT NULL,
    encoder_name       TEXT        NOT NULL,
    encoder_checksum   TEXT        NOT NULL,
    encoder_max_length INTEGER     NOT NULL,
    added_by           TEXT        NOT NULL,
    added_at           TIMESTAMPTZ NOT NULL,
    deleted_at         TIMESTAMPTZ
);
CREATE INDEX reference_active ON reference (deleted_at, id);

-- Parameters calibrated on a validation split, per encoder.
CREATE TABLE calibration (
    encoder_name       TEXT        NOT NULL,
    encoder_checksum   TEXT        NOT NULL,
    encoder_max_length INTEGER     NOT NULL,
    body               TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (encoder_name, encoder_checksum, encoder_max_length)
);
