"""The personal-data protection service: registry, consents, access decisions, the citizen's
access log, complaints, leaks."""
