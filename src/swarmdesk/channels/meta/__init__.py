"""Meta's messaging products: WhatsApp Cloud API (``whatsapp``) and Messenger (``messenger``)."""
