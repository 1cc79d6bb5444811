"""Reference parameters for the classical metrics, shipped with hfaid (provenance in NOTICE.md)."""
