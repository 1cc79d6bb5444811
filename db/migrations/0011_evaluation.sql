-- Evaluation (`hfaid evaluate`): held-out test sets, the SR outputs of each method on them,
-- and their full- and no-reference scores. Test images are not pool images: they live in
-- their own tables, and link to the pool only through the content id of their source file.

-- One row per test set (its folder's manifest); set_id = the manifest's content fingerprint.
CREATE TABLE eval_sets (
    set_id      VARCHAR PRIMARY KEY,
    folder      VARCHAR NOT NULL,
    protocol    JSON NOT NULL,          -- HR size, scale, seed, degradation, PSNR/SSIM convention
    images      INTEGER NOT NULL,
    layout      JSON,                   -- the latest run's table: metrics in row order,
                                        -- notes (metric -> why its row is empty), shave (px)
    run_id      BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);

-- The set's images: HR crop and LR input by content id, and where the HR came from.
CREATE TABLE eval_images (
    set_id      VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,       -- file stem: LR is lr/<name>.png, SR outputs <name>.*
    hr_id       VARCHAR NOT NULL,       -- BLAKE3 of hr/<name>.png
    lr_id       VARCHAR NOT NULL,
    hr_path     VARCHAR NOT NULL,
    source_path VARCHAR,
    source_id   VARCHAR                 -- BLAKE3 of the source file = images.image_id if ingested
);
CREATE INDEX eval_images_set ON eval_images(set_id);

-- Methods compared on a set: a folder of SR outputs, or a built-in baseline.
CREATE TABLE eval_methods (
    set_id      VARCHAR NOT NULL,
    method      VARCHAR NOT NULL,
    folder      VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,       -- folder | baseline
    position    INTEGER NOT NULL,       -- column order in the table
    run_id      BIGINT
);

-- The file standing for (method, image) as of the latest run; a missing file has status
-- 'missing' and no output_id.
CREATE TABLE eval_outputs (
    set_id      VARCHAR NOT NULL,
    method      VARCHAR NOT NULL,
    name        VARCHAR NOT NULL,
    output_id   VARCHAR,                -- BLAKE3 of the SR file: scores follow content, not paths
    path        VARCHAR,
    width       INTEGER,
    height      INTEGER,
    status      VARCHAR NOT NULL,       -- ok | missing
    run_id      BIGINT
);
CREATE INDEX eval_outputs_set ON eval_outputs(set_id, method);

-- Scores of an SR file: full-reference metrics against an HR file (reference_id = its hr_id),
-- no-reference ones with reference_id ''. One row per (output, reference, metric, version);
-- an error row is replaced when a re-run scores it.
CREATE TABLE eval_scores (
    output_id    VARCHAR NOT NULL,
    reference_id VARCHAR NOT NULL,
    metric       VARCHAR NOT NULL,
    version      VARCHAR NOT NULL,
    value        DOUBLE,
    status       VARCHAR NOT NULL,      -- ok | error
    reason       VARCHAR,
    detail       VARCHAR,
    run_id       BIGINT,
    created_at   TIMESTAMP NOT NULL DEFAULT now()
);
CREATE INDEX eval_scores_output ON eval_scores(output_id);
