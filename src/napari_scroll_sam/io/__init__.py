"""Lazy volume IO: open, read, write, and the built-in sample."""
