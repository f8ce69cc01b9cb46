"""Test and demo helpers: synthetic BIDS datasets from real template volumes."""
