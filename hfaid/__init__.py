"""The hfaid command line: the Typer app, one module per command group, shared options and output.

It sits on top: it may import every other package of the project, and none of them imports it.
"""

__version__ = "0.1.0"
