"""Screens: each composes widgets and runs its one operation in a thread worker."""
