"""netopt's CrossGuard policy pack: score, capacity, structural and security gates (see policies/README.md)."""
