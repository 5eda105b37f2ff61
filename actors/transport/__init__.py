"""From the wire to an activation: pull and push consumers, decoding, payloads by reference."""
