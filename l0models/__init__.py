"""l0models."""
