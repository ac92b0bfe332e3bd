"""Threat intelligence: STIX 2.1 objects, sharing with partners, redaction before sharing."""
