"""`hfaid report`: one self-contained HTML funnel report plus its figures as PNG files."""
