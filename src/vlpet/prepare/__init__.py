"""Data preparation tools."""
