"""Swarmdesk: one system of engagement for customer service."""

__version__ = "0.1.0"
