"""Background jobs of the swarming domain (registered at import by swarmdesk.registrations)."""
