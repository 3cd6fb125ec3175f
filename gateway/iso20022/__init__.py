"""ISO 20022 message layer: hardened reading, profile validation, idempotency keys, builders."""
