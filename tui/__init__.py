"""The Textual TUI for snapfs (a package of its own, so `import snapfs` never loads Textual)."""
