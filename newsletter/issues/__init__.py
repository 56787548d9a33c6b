"""Issues as stored: the store, their lint, the archive, feeds into drafts, and their commands."""
