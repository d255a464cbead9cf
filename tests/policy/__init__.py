"""Policy-pack tests: the pack run through offline.analyzer, as the engine runs it."""
