"""Command-line interface (BIDS-App contract)."""
