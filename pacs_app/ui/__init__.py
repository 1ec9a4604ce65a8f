"""The Reflex web UI: thin state classes that call the domain layer."""
