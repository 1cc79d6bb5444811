-- Stage 1 (clean + dedup): decode verdicts, perceptual hashes and near-duplicate groups.

-- One row per measured image: did it decode, and what the file was like (notes).
-- status: ok | reject (content unusable: reason) | error (could not be measured: reason).
CREATE TABLE clean_decodes (
    image_id    VARCHAR PRIMARY KEY,
    version     VARCHAR NOT NULL,       -- measurement version, e.g. clean-1-x4
    status      VARCHAR NOT NULL,
    reason      VARCHAR,
    detail      VARCHAR,
    notes       VARCHAR,                -- format, mode, icc->srgb, exif_orientation=6, draft ...
    run_id      BIGINT,
    measured_at TIMESTAMP NOT NULL DEFAULT now()
);

-- 64-bit pHash of the upright image, computed in the clean decode pass.
CREATE TABLE phashes (
    image_id    VARCHAR PRIMARY KEY,
    phash       UBIGINT NOT NULL,
    version     VARCHAR NOT NULL,
    run_id      BIGINT
);

-- The latest dedup run's groups: every grouped image with its kept representative.
CREATE TABLE near_duplicates (
    image_id        VARCHAR PRIMARY KEY,
    representative  VARCHAR NOT NULL,   -- equals image_id for the kept image
    group_size      INTEGER NOT NULL,
    distance        INTEGER,            -- Hamming distance to the representative
    max_distance    INTEGER NOT NULL,   -- the k used
    run_id          BIGINT
);
