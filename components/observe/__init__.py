"""Observation: proxies' access logs back into measured plan inputs, drift and a stack-file patch."""
