"""The command line: one Typer module per command group, each command a few lines."""
