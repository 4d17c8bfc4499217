"""The snapfs command line: one module per verb, errors mapped to exit codes in main.py."""
