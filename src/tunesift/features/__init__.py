"""Featurizers (text to vectors) and the feature cache."""
