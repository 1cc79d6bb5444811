"""CLI command modules; each registers its commands on hfaid.app.app."""
