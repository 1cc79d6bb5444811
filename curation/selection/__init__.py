"""Selection: the [policy] rules as SQL over stored scores, learned thresholds, metric studies.

May import hfaid_core/ and db/ only.
"""
