"""PostgreSQL access: pools and the migrator."""

from foundation.db.migrate import Migration, MigrationError, discover, migrate, migrations_dir, pending
from foundation.db.pool import create_pool, init_connection

__all__ = [
    "Migration",
    "MigrationError",
    "create_pool",
    "discover",
    "init_connection",
    "migrate",
    "migrations_dir",
    "pending",
]
