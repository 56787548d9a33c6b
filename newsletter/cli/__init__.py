"""The command line: the root app, error handling, output helpers and the ops commands."""
