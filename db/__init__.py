"""The DuckDB catalog: the only package that opens the catalog file or writes SQL."""
