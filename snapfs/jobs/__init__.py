"""Automated backup and recovery: jobs from a config file, run once or on their schedules.

config (TOML -> typed records) · schedule (every / cron -> next time) · runner (one run: its
steps in order) · history (SQLite) · daemon · metrics (prometheus-client) · notify (webhook,
command). The jobs call the operations exactly as the CLI does, never the CLI itself.
"""
