"""Demo inputs built from real data that installed packages ship (nothing is downloaded)."""
