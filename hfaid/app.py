"""The Typer application object that every command module registers on."""

import typer

app = typer.Typer(
    name="hfaid",
    help="Curate human-verified, captioned training sets for diffusion super-resolution.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
