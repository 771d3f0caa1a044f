"""Phone (``phone``): calls to a Twilio number, answered by the inbox's IVR (``ivr``), recorded in the
caller's conversation.

Twilio posts everything about a call to the inbox's webhook: the incoming call (answered with the
top menu), each key pressed (``?step=gather``: the next menu level), the end of a ``<Dial>`` or
``<Enqueue>`` (nobody answered: voicemail), the end of a recording, and the status, recording and
transcription callbacks. Each call event becomes one message in the caller's conversation —
``external_id`` ``<CallSid>:<event>``, so a retried callback adds nothing — with a line an agent
reads and the structured data in ``meta["call"]``. The caller's number is the same verified phone
identity as their SMS or WhatsApp, so a call joins the customer's open conversation.

Phone inboxes cannot send: agents answer on another channel (SMS, WhatsApp, email).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field

from swarmdesk.channels.base import (
    Capabilities,
    InboundMessage,
    InboundRequest,
    IngestResult,
    OutboundMessage,
    SendResult,
    WebhookReply,
)
from swarmdesk.channels.registry import channels
from swarmdesk.channels.twilio.common import TwilioChannel, TwilioConfig, TwilioForm, empty_twiml, sender_claims, twiml
from swarmdesk.channels.twilio.ivr import IvrRenderer, IvrSettings
from swarmdesk.contacts.identity import IdentityClaim, Phone
from swarmdesk.contacts.models import IdentityKind
from swarmdesk.core.errors import BadRequest
from swarmdesk.jobs.registry import PermanentFailure

_MISSED = {"no-answer": "nobody answered", "busy": "the line was busy", "failed": "the call failed",
           "canceled": "the caller hung up before it was answered"}
_FINAL = {"completed", *_MISSED}


class PhoneConfig(TwilioConfig, IvrSettings):
    phone_number: Phone | None = Field(default=None, description="the Twilio number customers call (E.164)")


@dataclass(frozen=True, slots=True)
class CallEvent:
    name: str  # ringing, answered, completed, missed, voicemail, voicemail_transcript
    duration_seconds: int | None = None
    reason: str = ""


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _customer(request: InboundRequest, form: TwilioForm) -> str:
    """The customer's number: the caller, or the one called when an agent placed the call through
    Twilio; recording callbacks carry neither, so our callback URL names the caller."""
    if form.get("Direction").startswith("outbound"):
        return form.get("To")
    return form.get("From") or request.query.get("caller", "")


@channels.register
class PhoneChannel(TwilioChannel):
    kind = "phone"
    title = "Phone (Twilio)"
    config_model = PhoneConfig
    capabilities = Capabilities(can_send=False, recipient_kinds=(IdentityKind.phone,))
    config: PhoneConfig

    def event(self, request: InboundRequest, form: TwilioForm) -> CallEvent | None:
        """The call event a delivery reports, if any (a key pressed is none)."""
        step, callback = request.query.get("step"), request.query.get("event")
        if callback == "recording":
            if form.get("RecordingStatus", "completed") != "completed" or not form.get("RecordingUrl"):
                return None
            return CallEvent("voicemail", form.int("RecordingDuration"))
        if callback == "transcription":
            return CallEvent("voicemail_transcript", form.int("RecordingDuration"))
        if step == "dial" and form.get("DialCallStatus") in _MISSED:
            return CallEvent("missed", reason=_MISSED[form.get("DialCallStatus")])
        if step == "queue" and form.get("QueueResult") not in ("", "bridged", "hangup"):
            return CallEvent("missed", reason="nobody took the call from the queue")
        if step or callback:
            return None
        status = form.get("CallStatus")
        if status == "ringing":
            return CallEvent("ringing")
        if status == "in-progress":
            return CallEvent("answered")
        if status == "completed":
            return CallEvent("completed", form.int("CallDuration"))
        if status in _MISSED:
            return CallEvent("missed", reason=_MISSED[status])
        return None

    def parse(self, request: InboundRequest) -> list[InboundMessage]:
        form = self.form(request)
        event = self.event(request, form)
        if event is None:
            return []
        call_sid = form.get("CallSid")
        if not call_sid:
            raise BadRequest("CallSid is required")
        claims = sender_claims(_customer(request, form), self.context.inbox_id, call_sid=call_sid)
        recording_url = form.get("RecordingUrl") or None
        transcript = form.get("TranscriptionText").strip() or None
        content = self.describe(event, claims[0], recording_url, transcript, form)
        call: dict[str, Any] = {"sid": call_sid, "event": event.name, "status": form.get("CallStatus") or None,
                                "duration_seconds": event.duration_seconds, "recording_url": recording_url,
                                "transcript": transcript}
        return [InboundMessage(external_id=f"{call_sid}:{event.name}", content=content,
                               sender_name=form.get("CallerName").strip()[:200], claims=claims,
                               meta={"call": call, "from": form.get("From"), "to": form.get("To")})]

    @staticmethod
    def describe(event: CallEvent, caller: IdentityClaim, recording_url: str | None, transcript: str | None,
                 form: TwilioForm) -> str:
        who = caller.value if caller.kind == IdentityKind.phone else "a withheld number"
        took = _duration(event.duration_seconds)
        match event.name:
            case "ringing":
                line = f"Incoming call from {who}"
            case "answered":
                line = f"Call from {who} answered"
            case "completed":
                line = f"Call with {who} ended" + (f" after {took}" if took else "")
            case "missed":
                line = f"Missed call from {who}: {event.reason}"
            case "voicemail":
                line = f"Voicemail ({took})" if took else "Voicemail"
            case _:  # voicemail_transcript: the transcript is the message
                heard = transcript if form.get("TranscriptionStatus", "completed") == "completed" and transcript \
                    else "(Twilio could not transcribe it)"
                line = f"Voicemail ({took}): {heard}" if took else f"Voicemail: {heard}"
                transcript = None
        if transcript:
            line += f"\nTranscript: {transcript}"
        if recording_url:
            line += f"\nRecording: {recording_url}"
        return line

    def acknowledge(self, request: InboundRequest, results: list[IngestResult]) -> WebhookReply:
        """The TwiML that carries the call on; callbacks get an empty document."""
        form, query = self.form(request), request.query
        if query.get("event"):
            return empty_twiml()
        renderer = IvrRenderer(self.config, request.url.split("?", 1)[0], _customer(request, form))
        step = query.get("step")
        if step == "gather":
            attempt = query.get("attempt", "")
            tries = min(int(attempt), self.config.max_retries) if attempt.isascii() and attempt.isdigit() else 0
            return twiml(renderer.answer(query.get("ivr", ""), tries, form.get("Digits").strip()))
        if step == "dial":
            done = form.get("DialCallStatus") in ("completed", "answered")
            return twiml(renderer.goodbye("Goodbye.") if done else renderer.unanswered())
        if step == "queue":
            done = form.get("QueueResult") in ("bridged", "hangup")
            return twiml(renderer.goodbye("Goodbye.") if done else renderer.unanswered())
        if step == "recorded":
            return twiml(renderer.goodbye())
        if form.get("CallStatus") in _FINAL:
            return empty_twiml()
        return twiml(renderer.menu())

    async def send(self, message: OutboundMessage) -> SendResult:
        raise PermanentFailure("a phone inbox cannot send messages; reply on SMS, WhatsApp or email")
