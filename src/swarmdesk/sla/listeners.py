"""Durable reactions to events of the sla domain (registered at import by swarmdesk.registrations)."""
