"""Commands for operating what runs: dead letters (``dlq``), alerts (``alerts check``), a run's
timeline (``chain``), retention (``retention run``), flow limits (``limits``), the console and the
scheduler's process (``scheduler run``)."""
