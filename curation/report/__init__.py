"""`hfaid report`: one self-contained HTML funnel report plus its figures as PNG files.

May import curation.selection (rules, thresholds, studies), hfaid_core/ and db/.
"""
