"""Durable reactions to events of the routing domain (registered at import by swarmdesk.registrations)."""
