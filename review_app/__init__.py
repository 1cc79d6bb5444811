"""The Streamlit review app: thin pages over db/review.py and db/accounts.py.

May import curation/, hfaid_core/ and db/.
"""
