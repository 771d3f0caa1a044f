"""Durable reactions to events of the automation domain (registered at import by swarmdesk.registrations)."""
