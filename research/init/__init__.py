"""Initialise the embedding rows of new vocabulary pieces from the base model's rows."""
