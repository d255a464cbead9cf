"""HTTP method facts the spec and the policy pack share, in a module that imports nothing (the pack imports it
without loading the pydantic schema, which is most of its start-up time)."""

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
