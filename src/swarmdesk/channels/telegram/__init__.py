"""Telegram Bot API (``telegram``)."""
