-- Stage 1 duplicates: byte-identical paths as ingest outcomes; embedding near-duplicates.

-- Ingest's outcome for every path: a read error, an exact duplicate (the same bytes as a path
-- already kept for that image: the smallest path, the one jobs open), or a pass. A view over
-- `paths`, so it follows re-ingests and deleted files without a second copy to keep in step.
CREATE VIEW ingest_outcomes AS
SELECT p.path,
       p.image_id,
       CASE WHEN p.error IS NOT NULL THEN 'error'
            WHEN p.path <> k.path THEN 'reject' ELSE 'pass' END AS status,
       CASE WHEN p.error IS NOT NULL THEN p.error
            WHEN p.path <> k.path THEN 'exact_duplicate' END AS reason,
       CASE WHEN p.error IS NOT NULL THEN p.error_detail
            WHEN p.path <> k.path THEN 'byte-identical to ' || k.path END AS detail,
       k.path AS kept_path,
       p.run_id
FROM paths p LEFT JOIN image_paths k ON k.image_id = p.image_id;

-- Image embeddings for `hfaid dedup --method embedding`: computed once per (model, version),
-- so a new cosine threshold regroups without running the model again.
CREATE TABLE embeddings (
    image_id  VARCHAR NOT NULL,
    model     VARCHAR NOT NULL,         -- `hfaid weights` name, e.g. clip-vit-b32
    version   VARCHAR NOT NULL,         -- embedding definition (preprocessing, pooling)
    vector    FLOAT[] NOT NULL,         -- L2-normalised
    run_id    BIGINT,
    PRIMARY KEY (image_id, model, version)
);

-- Which method grouped a near-duplicate, and the cosine similarity to its representative
-- (embedding groups have no Hamming distance).
ALTER TABLE near_duplicates ADD COLUMN method VARCHAR DEFAULT 'phash';
ALTER TABLE near_duplicates ADD COLUMN similarity DOUBLE;
ALTER TABLE near_duplicates ALTER COLUMN max_distance DROP NOT NULL;
