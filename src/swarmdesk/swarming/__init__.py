"""Swarming: one owner pulls experts into a live internal room attached to the conversation."""
