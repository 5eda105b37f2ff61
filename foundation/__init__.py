"""The platform below the libraries: settings, connections, the database, telemetry, group
commit, back-off, the JetStream publisher. Used by ``actors`` and ``scheduler``; imports only ``subjects``."""
