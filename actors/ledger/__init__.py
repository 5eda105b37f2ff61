"""The ledger in PostgreSQL: step claims and outcomes, runs, execution chains, progress and
gates, retention."""
