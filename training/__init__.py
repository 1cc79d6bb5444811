"""The bundled RAP-SR fine-tuning (RPR + ROPO) and identifier-guided inference.

May import curation/, hfaid_core/ and db/.
"""
