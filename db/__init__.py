"""The DuckDB catalog: the only package that opens the catalog file or writes SQL.

The bottom layer: it imports no other package of the project.
"""
