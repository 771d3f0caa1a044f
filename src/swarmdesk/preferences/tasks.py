"""Background jobs of the preferences domain (registered at import by swarmdesk.registrations)."""
