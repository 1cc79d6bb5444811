"""CLI command modules; each registers its commands on curation.cli_app.app."""
