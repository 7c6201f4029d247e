"""``python -m imagegen`` runs the CLI."""

from .cli import main

main()
