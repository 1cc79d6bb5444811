"""Stage 1, initial cleaning: safe decode, grayscale/size/aspect/Laplacian checks, pHash dedup.

May import hfaid_core/ and db/ only.
"""
