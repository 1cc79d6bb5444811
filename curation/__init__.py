"""The pipeline library, one subpackage per funnel stage: ingest, stage1, scoring, selection, ...

It may import hfaid_core/ and db/; the command line (hfaid/) and the apps above build on it.
"""
