"""Stages 2 and 3, scoring: the scorer registry, the batched scoring job and its time split.

May import hfaid_core/ and db/ only.
"""
