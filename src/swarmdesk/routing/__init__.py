"""Presence, capacity, skills and routing: who gets a conversation, and why."""
