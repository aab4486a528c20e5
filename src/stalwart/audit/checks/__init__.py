"""The audit's checks, one per file; each registers itself with ``register_check``."""
