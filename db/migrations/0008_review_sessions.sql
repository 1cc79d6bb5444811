-- Review app for a team (issue 21): login sessions, the materialised queue, skips, vote timing.

-- One row per login. Only the SHA-256 of each session token is stored (the token itself lives in
-- the browser's HttpOnly cookie); `hfaid sql` hides this table.
CREATE TABLE review_sessions (
    token_hash  VARCHAR PRIMARY KEY,
    reviewer    VARCHAR NOT NULL,
    client      VARCHAR,                    -- client address at login
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    ended_at    TIMESTAMP,                  -- logout, account disabled, password reset
    ended_why   VARCHAR
);

-- The review queue of one input stage ('*': every ingested image), in hand-out order (seq), with
-- each image's current voters. Rows are appended in seq order and never moved (scalar columns
-- update in place), so a seq range reads one row group: the next image is found in a window
-- after a frontier, not by scanning the pool.
CREATE TABLE review_queue (
    queue     VARCHAR NOT NULL,
    seq       BIGINT NOT NULL,
    image_id  VARCHAR NOT NULL,
    path      VARCHAR,
    voter_a   VARCHAR,                      -- current (not undone) voters
    voter_b   VARCHAR,
    skips     SMALLINT NOT NULL DEFAULT 0,  -- distinct reviewers who skipped it (unsure)
    state     VARCHAR NOT NULL              -- open | split | done | unsure | error | gone
);
CREATE INDEX review_queue_image ON review_queue(image_id);

-- Per queue: the next seq to hand out to new images and what the last sync saw of the stage.
CREATE TABLE review_queue_meta (
    queue         VARCHAR PRIMARY KEY,
    next_seq      BIGINT NOT NULL,
    source_rows   BIGINT,
    source_stamp  TIMESTAMP,
    synced_at     TIMESTAMP
);

-- Where each reviewer's search starts (reviewer '' = anyone's): every row before it is taken
-- for that reviewer. Lowered whenever an image becomes available again.
CREATE TABLE review_frontiers (
    queue     VARCHAR NOT NULL,
    reviewer  VARCHAR NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (queue, reviewer)
);

-- Skip / unsure: the image comes back to that reviewer last; enough skips send it to an admin.
CREATE TABLE review_skips (
    image_id    VARCHAR NOT NULL,
    reviewer    VARCHAR NOT NULL,
    comment     VARCHAR,
    skipped_at  TIMESTAMP NOT NULL
);

ALTER TABLE review_leases ADD COLUMN leased_at TIMESTAMP;
ALTER TABLE review_votes ADD COLUMN seen_ms INTEGER;       -- how long the image was on screen
