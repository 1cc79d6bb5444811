-- The process that runs each command, so a run whose process is gone reads as interrupted.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN pid_started DOUBLE;  -- the process's start, seconds since the epoch
ALTER TABLE runs ADD COLUMN host VARCHAR;
