"""Versioned schema migrations: NNNN_name.sql files applied in order, each in one transaction."""
