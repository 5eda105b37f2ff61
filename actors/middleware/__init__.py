"""Around-middleware for one delivery, composed once per track: tracing, claim, breaker, time limit."""
