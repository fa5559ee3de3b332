"""`python -m calstream` runs the command line."""

from calstream.cli import app

app()
