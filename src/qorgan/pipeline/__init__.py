"""Pipeline: running detection as background work (hunt jobs) and feeding the alert store."""
