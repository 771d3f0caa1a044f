"""Background jobs of the sla domain (registered at import by swarmdesk.registrations)."""
