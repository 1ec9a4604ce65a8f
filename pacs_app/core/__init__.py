"""Cross-cutting infrastructure: database, security primitives, errors, logging."""
