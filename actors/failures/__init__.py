"""When a step cannot complete: the dead-letter door, advisories and the sweep, unroutable
triggers, DLQ operations, alerts."""
