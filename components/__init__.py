"""netopt components: the typed spec, the pure plan/scores/renderer core, and the Pulumi component resources."""
