"""Automation rules and macros: on an event, if conditions, then actions; every execution logged."""
