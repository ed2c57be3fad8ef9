"""One module per CLI command: each takes parsed arguments and returns an exit status."""
