"""`hfaid plan`: images in and out, wall time and GPU-hours per step, before any work runs.

May import hfaid_core/ and db/ (reads the catalog's runs and outcomes, never writes).
"""
