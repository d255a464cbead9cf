"""Layer 2, the plan: the target-neutral IR every proxy and target is built from, and the math on it (balancing,
capacity, scores, the report). Pure Python: reads a validated spec, imports nothing from render/, targets/ or Pulumi."""
