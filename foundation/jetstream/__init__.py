"""Publishing to JetStream: confirmed publishes (PubAck inbox), read-loop inboxes, per-loop timers."""
