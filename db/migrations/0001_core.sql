-- Core catalog: images, their paths, runs, per-stage outcomes and long-format scores.
CREATE SEQUENCE run_id_seq START 1;

CREATE TABLE runs (
    run_id      BIGINT PRIMARY KEY DEFAULT nextval('run_id_seq'),
    command     VARCHAR NOT NULL,
    config      JSON,
    versions    JSON,
    started_at  TIMESTAMP NOT NULL DEFAULT now(),
    ended_at    TIMESTAMP,
    status      VARCHAR NOT NULL DEFAULT 'running',  -- running | done | failed | interrupted
    counts      JSON
);

-- One row per distinct content (image_id = BLAKE3-256 hex of the file bytes).
CREATE TABLE images (
    image_id          VARCHAR PRIMARY KEY,
    bytes             BIGINT NOT NULL,
    format            VARCHAR,          -- PIL format name from the header, NULL if unreadable
    width             INTEGER,
    height            INTEGER,
    mode              VARCHAR,
    exif_orientation  SMALLINT,
    n_frames          INTEGER,
    header_error      VARCHAR,          -- why the header could not be read (decode check decides)
    run_id            BIGINT,
    ingested_at       TIMESTAMP NOT NULL DEFAULT now()
);

-- Every path seen by ingest; the same bytes at two paths are one image with two paths.
CREATE TABLE paths (
    path      VARCHAR PRIMARY KEY,
    image_id  VARCHAR,                  -- NULL when the file could not be read
    source    VARCHAR NOT NULL,
    size      BIGINT,
    mtime     DOUBLE,
    error     VARCHAR,                  -- reason code when the file could not be read
    error_detail VARCHAR,               -- the message behind that reason
    run_id    BIGINT,
    seen_at   TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX paths_image ON paths(image_id);

-- Latest outcome of each stage for each image; the run that wrote it is the audit trail.
CREATE TABLE stage_outcomes (
    image_id    VARCHAR NOT NULL,
    stage       VARCHAR NOT NULL,
    status      VARCHAR NOT NULL,       -- pass | reject | error
    reason      VARCHAR,                -- specific machine-readable reason on reject/error
    detail      VARCHAR,                -- human-readable message or measured value
    run_id      BIGINT,
    decided_at  TIMESTAMP NOT NULL DEFAULT now()
);

-- Long-format scores: one row per (image, metric, scorer version).
CREATE TABLE scores (
    image_id    VARCHAR NOT NULL,
    metric      VARCHAR NOT NULL,
    value       DOUBLE,
    version     VARCHAR NOT NULL,
    run_id      BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);

-- One readable path per image (the smallest), for jobs that need to open the file.
CREATE VIEW image_paths AS
SELECT image_id, min(path) AS path FROM paths WHERE image_id IS NOT NULL GROUP BY image_id;
