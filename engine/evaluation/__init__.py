"""Evaluation harness: measures what each edit really changes (``stepedit eval``)."""
