"""The `w2s` command-line interface."""
