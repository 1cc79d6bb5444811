"""Recipes that ship with hfaid (`hfaid run --recipe FILE` takes a copy of one)."""
