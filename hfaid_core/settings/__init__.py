"""The typed config sections, one module per TOML section group, gathered by hfaid_core.config.

Plain dataclasses with their documented defaults; they import nothing of the project but errors.
"""
