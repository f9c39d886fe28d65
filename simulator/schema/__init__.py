"""The scenario as a description: derived facts that need no run (windows, routes, thresholds, inputs)."""
