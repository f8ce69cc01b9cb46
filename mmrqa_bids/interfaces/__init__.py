"""Thin Nipype interfaces around mmrqa's pure functions."""
