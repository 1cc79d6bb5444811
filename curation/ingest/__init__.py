"""Ingest: expand sources into paths, hash each file (BLAKE3 content id) and read its header.

May import hfaid_core/ and db/ only.
"""
