"""Export: the curated set as WebDataset shards or an imagefolder, with manifest and datasheet.

May import curation.degrade (LR pairs), curation.ingest (content ids), hfaid_core/ and db/.
"""
