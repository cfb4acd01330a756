"""The embedded driver: a SQLite store, worktrees, processes with limits, and the loop."""
