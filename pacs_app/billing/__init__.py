"""Money and its formatting (plain Python; the billing use cases live in services/billing)."""
