"""Background jobs of the automation domain (registered at import by swarmdesk.registrations)."""
