"""Durable reactions to events of the swarming domain (registered at import by swarmdesk.registrations)."""
