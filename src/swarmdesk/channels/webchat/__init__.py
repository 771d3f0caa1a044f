"""The web chat widget: one script tag on the customer's site, a pre-chat form, live messages,
typing, attachments, signed identity for logged-in visitors, email when nobody is online."""
