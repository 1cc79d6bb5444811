-- The export row of every scored image: its readable path (the smallest, as image_paths;
-- NULL while no path holds it) and one column per metric holding its latest value (NaN is none).
-- Kept in step by every write (db.scores: insert_scores for scores, refresh_latest_paths for
-- ingest's paths), so `hfaid scores` copies one table instead of pivoting 12M long rows.
-- Metric names map to columns m<position>, so any name is a safe column. Filled from
-- `scores` by the follow-up db.scores.rebuild_latest_scores.
CREATE TABLE score_columns (
    metric      VARCHAR PRIMARY KEY,
    position    INTEGER NOT NULL UNIQUE
);
CREATE TABLE scores_latest (image_id VARCHAR NOT NULL, path VARCHAR);
