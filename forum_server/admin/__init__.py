"""Operator tooling: create a forum (``init``), admit members, manage keys and credentials."""
