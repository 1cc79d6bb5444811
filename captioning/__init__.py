"""Florence-2 captioning: the captioner, caption checks, the caption job and source captions.

May import curation/, hfaid_core/ and db/.
"""
