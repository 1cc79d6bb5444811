-- The process that runs each command, so a run whose process is gone reads as interrupted.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_started DOUBLE;  -- the process's start, seconds since the epoch
ALTER TABLE runs ADD COLUMN host VARCHAR;

-- Images whose content no path holds any more (a file rewritten with other bytes): they take
-- part in no stage and no count. Kept by ingest's merge, so stages check a small table instead
-- of joining a million paths.
CREATE TABLE orphan_images (image_id VARCHAR PRIMARY KEY);
INSERT INTO orphan_images
SELECT image_id FROM images i WHERE NOT EXISTS (SELECT 1 FROM paths p WHERE p.image_id = i.image_id);
