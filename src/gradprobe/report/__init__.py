"""Figures and reports: drawn from results, never recomputed."""
