"""Background jobs of the routing domain (registered at import by swarmdesk.registrations)."""
