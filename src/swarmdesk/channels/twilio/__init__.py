"""Twilio channels: SMS (``twilio_sms``), WhatsApp over Twilio (``twilio_whatsapp``) and Phone with
an IVR (``phone``). ``common`` holds what they share: webhook signatures, form parsing, TwiML and
the REST client."""
