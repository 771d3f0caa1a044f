"""Durable reactions to events of the preferences domain (registered at import by swarmdesk.registrations)."""
