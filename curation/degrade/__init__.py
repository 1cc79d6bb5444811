"""Degradation: Real-ESRGAN second-order degradation (seedable) and its text description.

May import hfaid_core/ only.
"""
