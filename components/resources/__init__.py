"""Layer 4, the Pulumi edge: the component resources (`netopt:index:*`) that hand the plan to a target."""
