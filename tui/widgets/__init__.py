"""Widgets: each owns its view state and nests its own messages."""
