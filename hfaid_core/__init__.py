"""Shared infrastructure below every pipeline package: config, errors, the shard runner, weights.

It may import db/ only; curation/, captioning/, review_app/, training/ and hfaid/ build on it.
"""
