"""Commands for operating what runs: dead letters (``dlq``), alerts (``alerts check``), a run's
timeline (``chain``) and retention (``retention run``)."""
