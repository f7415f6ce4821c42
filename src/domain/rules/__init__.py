"""The rule language: parse, type-check against the catalog, compile once, decide per event."""
