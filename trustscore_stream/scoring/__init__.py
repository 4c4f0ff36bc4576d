"""Trust-score model: pure factor state, update and value functions."""
