"""Customer-set contact rules: preferred channel, quiet hours, channels never to use, a contact cap."""
