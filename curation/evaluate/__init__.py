"""Evaluation: the paper's SR test protocol, full- and no-reference metrics, Table-1 tables.

May import curation.degrade, curation.scoring, curation.ingest, curation.demo, hfaid_core/, db/.
"""
