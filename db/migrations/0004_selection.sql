-- Metric studies (the paper's best/worst-N per metric user study) and their votes.
CREATE SEQUENCE study_id_seq START 1;

CREATE TABLE studies (
    study_id    BIGINT PRIMARY KEY DEFAULT nextval('study_id_seq'),
    name        VARCHAR NOT NULL,
    metrics     VARCHAR[] NOT NULL,
    n           INTEGER NOT NULL,       -- best and worst n per metric
    input_stage VARCHAR,                -- images drawn from those that passed this stage
    seed        BIGINT NOT NULL,
    run_id      BIGINT,
    created_at  TIMESTAMP NOT NULL DEFAULT now()
);

-- What reviewers see: each image once, in a shuffled order, with no metric attached.
CREATE TABLE study_items (
    study_id    BIGINT NOT NULL,
    position    INTEGER NOT NULL,
    image_id    VARCHAR NOT NULL,
    PRIMARY KEY (study_id, position)
);

-- Why each image is in the study (hidden from reviewers): metric, best|worst, rank.
CREATE TABLE study_members (
    study_id    BIGINT NOT NULL,
    image_id    VARCHAR NOT NULL,
    metric      VARCHAR NOT NULL,
    side        VARCHAR NOT NULL,       -- best | worst
    rank        INTEGER NOT NULL,       -- 1 = the most extreme
    value       DOUBLE
);

-- Latest vote per (study, image, reviewer); a re-vote replaces the earlier one.
CREATE TABLE study_votes (
    study_id    BIGINT NOT NULL,
    image_id    VARCHAR NOT NULL,
    reviewer    VARCHAR NOT NULL,
    accept      BOOLEAN NOT NULL,
    cast_at     TIMESTAMP NOT NULL DEFAULT now(),
    PRIMARY KEY (study_id, image_id, reviewer)
);
