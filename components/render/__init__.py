"""Layer 3a, renderers: the plan as proxy configuration text (nginx.conf). They read the plan, never the spec."""
