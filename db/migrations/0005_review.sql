-- Review app (issue 6): accounts, votes, leases, adjudication decisions and an append-only audit log.
CREATE SEQUENCE review_vote_seq START 1;
CREATE SEQUENCE review_event_seq START 1;

CREATE TABLE reviewers (
    name           VARCHAR PRIMARY KEY,
    role           VARCHAR NOT NULL,            -- reviewer | admin
    password_hash  VARCHAR NOT NULL,            -- argon2id
    disabled       BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMP NOT NULL DEFAULT now()
);

-- Every vote ever cast; an undo stamps undone_at instead of deleting (the log stays whole).
CREATE TABLE review_votes (
    vote_id    BIGINT PRIMARY KEY DEFAULT nextval('review_vote_seq'),
    image_id   VARCHAR NOT NULL,
    reviewer   VARCHAR NOT NULL,
    decision   VARCHAR NOT NULL,                -- accept | reject
    reasons    VARCHAR[],
    comment    VARCHAR,
    cast_at    TIMESTAMP NOT NULL,
    undone_at  TIMESTAMP
);
CREATE INDEX review_votes_image ON review_votes(image_id);

-- A reviewer's claim on an image; expired rows are ignored and swept.
CREATE TABLE review_leases (
    image_id    VARCHAR NOT NULL,
    reviewer    VARCHAR NOT NULL,
    expires_at  TIMESTAMP NOT NULL
);

-- Adjudication of split votes by an admin who did not vote on the image.
CREATE TABLE review_decisions (
    image_id    VARCHAR PRIMARY KEY,
    decision    VARCHAR NOT NULL,               -- accept | reject
    decided_by  VARCHAR NOT NULL,
    note        VARCHAR,
    decided_at  TIMESTAMP NOT NULL
);

-- Append-only: votes, undos, decisions and account changes, with time and actor.
CREATE TABLE review_audit (
    event_id  BIGINT PRIMARY KEY DEFAULT nextval('review_event_seq'),
    event_at  TIMESTAMP NOT NULL,
    actor     VARCHAR NOT NULL,
    action    VARCHAR NOT NULL,                 -- vote | undo | adjudicate | account_* | password_reset
    image_id  VARCHAR,
    detail    JSON
);
