-- Exports: one row per finished export (a dataset written to a folder) and the images it holds.
CREATE TABLE exports (
    run_id           BIGINT PRIMARY KEY,      -- the `hfaid export` run that wrote it
    export_id        VARCHAR NOT NULL,        -- content fingerprint: same catalog + options, same id
    out_dir          VARCHAR NOT NULL,
    format           VARCHAR NOT NULL,        -- webdataset | imagefolder
    options          JSON,
    counts           JSON,
    manifest_sha256  VARCHAR NOT NULL,
    created_at       TIMESTAMP NOT NULL DEFAULT now()
);

CREATE TABLE export_items (
    run_id     BIGINT NOT NULL,
    image_id   VARCHAR NOT NULL,
    key        VARCHAR NOT NULL,              -- sample key inside the export
    shard      VARCHAR NOT NULL               -- shard file (webdataset) or image file (imagefolder)
);
CREATE INDEX export_items_run ON export_items(run_id);
