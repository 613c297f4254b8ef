"""Background sweeps: retention, archive, fixity; each callable from the scheduler or the CLI."""
