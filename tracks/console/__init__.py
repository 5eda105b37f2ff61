"""``tracks console``: a small web app to see and steer runs, dead letters, schedules and tracks.

Server-rendered pages (Starlette, Jinja2) with a little vanilla JavaScript for live counts, and
a JSON API under ``/api/`` for the same data. Everything it shows or does goes through the
functions the CLI uses (:mod:`actors.ledger.listing`, :mod:`actors.ledger.progress`,
:mod:`actors.ledger.cancel`, :mod:`actors.failures.dlq_ops`, :mod:`scheduler.schedules`,
:mod:`tracks.cli.top`).
"""

from tracks.console.app import create_app
from tracks.console.state import Console, open_console

__all__ = ["Console", "create_app", "open_console"]
