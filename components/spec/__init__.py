"""Layer 1, the input: what a stack's `netopt:*` config means (typed pydantic models), and one report of every problem."""
