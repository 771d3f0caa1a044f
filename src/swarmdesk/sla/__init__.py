"""Business hours and SLA policies: deadlines kept in the database, warnings and breaches exactly once."""
