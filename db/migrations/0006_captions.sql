-- Captions: generated captions (one row per image and model version) and source captions.
CREATE TABLE captions (
    image_id    VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,       -- hub id or folder name of the captioning model
    version     VARCHAR NOT NULL,       -- model + weights fingerprint + generation settings
    caption     VARCHAR NOT NULL,
    flags       VARCHAR[] NOT NULL,     -- check results: empty, too_short, repetitive, truncated, boilerplate
    n_tokens    INTEGER,                -- generated tokens (the limit decides `truncated`)
    settings    JSON,                   -- generation settings behind this caption
    run_id      BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX captions_image ON captions(image_id);

-- Captions that came with the images (sidecar .txt/.json or a table column); kept alongside.
CREATE TABLE source_captions (
    image_id    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,       -- where it came from: sidecar_txt, sidecar_json, table:<file>
    caption     VARCHAR NOT NULL,
    run_id      BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX source_captions_image ON source_captions(image_id);
