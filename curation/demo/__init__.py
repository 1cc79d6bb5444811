"""The demo: bundled real photographs, the demo pool with planted defects, the demo's steps.

May import hfaid_core/ only.
"""
