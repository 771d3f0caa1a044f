"""Phone inboxes over real HTTP, driven as Twilio drives a call: the incoming call answered with
the IVR, keys pressed (following the TwiML's own action URLs, signed as Twilio signs them), a
person one key away at every level, bounded retries, escaping of configured text, call events in
the caller's conversation, missed calls and voicemail with its transcript."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import httpx

from swarmdesk.channels.twilio.common import EMPTY_TWIML
from tests.channels.test_twilio_common import (  # noqa: F401  (settings: the fixture)
    ACCOUNT_SID,
    BASE_URL,
    CUSTOMER,
    SMS_NUMBER,
    Webhook,
    call_payload,
    create_inbox,
    ivr_config,
    live_client,
    messages,
    settings,
    sid,
    sms_payload,
    stored,
    twilio_config,
)
from tests.support import AccountCtx, Harness

PERSON = "+14155550199"
RECORDING_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE" + "7" * 32


def twiml(r: httpx.Response) -> ET.Element:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/xml")
    assert r.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(r.content)


def said(element: ET.Element) -> list[str]:
    return [s.text or "" for s in element.iter("Say")]


def verbs(response: ET.Element) -> list[str]:
    return [child.tag for child in response]


class Call:
    """One call, as Twilio makes it: the same CallSid and caller on every request."""

    def __init__(self, hook: Webhook, caller: str = CUSTOMER) -> None:
        self.hook = hook
        self.sid = sid("CA")
        self.caller = caller

    async def post(self, status: str = "ringing", *, query: str = "", **extra: str) -> httpx.Response:
        return await self.hook.post(call_payload(self.sid, status, caller=self.caller, **extra), query=query)

    async def follow(self, url: str, **extra: str) -> httpx.Response:
        """POST to a URL the TwiML gave Twilio (an action or callback), as Twilio would."""
        prefix = BASE_URL + self.hook.path + "?"
        assert url.startswith(prefix), url
        return await self.post("in-progress", query=url[len(prefix):], **extra)

    async def callback(self, url: str, params: dict[str, str]) -> httpx.Response:
        """Twilio's recording or transcription callback to the URL the TwiML named."""
        prefix = BASE_URL + self.hook.path + "?"
        assert url.startswith(prefix), url
        return await self.hook.post(params, query=url[len(prefix):])

    async def press(self, response: ET.Element, digits: str) -> ET.Element:
        gather = response.find("Gather")
        assert gather is not None, ET.tostring(response)
        return twiml(await self.follow(gather.attrib["action"], Digits=digits, msg="Gather End"))


def menu_of(response: ET.Element) -> list[str]:
    """What a caller hears inside the menu's <Gather>."""
    gather = response.find("Gather")
    assert gather is not None, ET.tostring(response)
    assert (gather.attrib["numDigits"], gather.attrib["method"], gather.attrib["actionOnEmptyResult"]) == (
        "1", "POST", "true")
    redirect = response.find("Redirect")
    assert redirect is not None and redirect.text == gather.attrib["action"]
    return said(gather)


async def _phone(h: Harness, ctx: AccountCtx, **config: Any) -> dict[str, Any]:
    return await create_inbox(h, ctx, "phone", ivr_config(**config), name="Phone")


async def test_incoming_call_is_answered_with_the_menu_and_recorded(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        response = twiml(await call.post("ringing"))
    assert verbs(response) == ["Gather", "Redirect"]
    assert menu_of(response) == ["Welcome to Acme.", "For billing, press 1.", "For sales, press 2.",
                                 "To leave a message, press 9.", "To speak to a person, press 0."]
    assert response.find("Gather").attrib["action"] == (  # type: ignore[union-attr]
        f"{inbox['webhook_url']}?step=gather&ivr=&attempt=0")

    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    (message,) = await messages(h, ctx, conversation["id"])
    assert (message["channel"], message["content"], message["external_id"]) == (
        "phone", f"Incoming call from {CUSTOMER}", f"{call.sid}:ringing")
    assert message["meta"]["call"] == {"sid": call.sid, "event": "ringing", "status": "ringing",
                                       "duration_seconds": None, "recording_url": None, "transcript": None}


async def test_three_menu_levels_each_offer_a_person(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        top = twiml(await call.post("ringing"))
        assert menu_of(top)[-1] == "To speak to a person, press 0."

        billing = await call.press(top, "1")
        assert menu_of(billing) == ["Billing.", "For opening hours, press 1.", "For invoices, press 2.",
                                    "To speak to a person, press 0."]
        assert billing.find("Gather").attrib["action"].endswith("?step=gather&ivr=1&attempt=0")  # type: ignore[union-attr]

        invoices = await call.press(billing, "2")
        assert menu_of(invoices) == ["Invoices.", "For old invoices, press 3.", "To speak to a person, press 0."]

        # A message read out, then the same menu again — a person still one key away.
        old = await call.press(invoices, "3")
        assert verbs(old) == ["Say", "Gather", "Redirect"]
        assert said(old)[0] == "Old invoices are in your account."
        assert menu_of(old) == menu_of(invoices)

        person = await call.press(old, "0")
        assert verbs(person) == ["Say", "Dial"]
        assert said(person) == ["Please hold while we connect you to a person."]
        dial = person.find("Dial")
        assert dial is not None and dial.attrib["action"] == f"{inbox['webhook_url']}?step=dial"
        assert [n.text for n in dial.iter("Number")] == [PERSON]

        # Key presses are not conversation messages: the ringing call is the only one.
        assert (await stored(h))[2] == 1


async def test_a_person_key_other_than_zero_and_an_option_with_its_own_queue(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx, person_key="*", person_label="For a human")
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        top = twiml(await call.post("ringing"))
        assert menu_of(top)[-1] == "For a human, press star."
        billing = await call.press(top, "1")
        assert menu_of(billing)[-1] == "For a human, press star."
        assert verbs(await call.press(billing, "*")) == ["Say", "Dial"]

        sales = await call.press(top, "2")
        enqueue = sales.find("Enqueue")
        assert enqueue is not None and enqueue.text == "sales"
        assert enqueue.attrib["action"] == f"{inbox['webhook_url']}?step=queue"


async def test_no_or_wrong_input_repeats_the_menu_then_connects_a_person(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx, max_retries=2)
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        top = twiml(await call.post("ringing"))
        billing = await call.press(top, "1")

        silence = await call.press(billing, "")  # Gather timed out: actionOnEmptyResult posts no Digits
        assert said(silence)[0] == "Sorry, I did not get that."
        assert menu_of(silence) == menu_of(billing)
        assert silence.find("Gather").attrib["action"].endswith("?step=gather&ivr=1&attempt=1")  # type: ignore[union-attr]

        wrong = await call.press(silence, "7")
        assert said(wrong)[0] == "Sorry, that is not one of the options."
        assert wrong.find("Gather").attrib["action"].endswith("&attempt=2")  # type: ignore[union-attr]

        # The <Redirect> fallback (no Digits at all) counts the same; after two repeats, a person.
        redirect = wrong.find("Redirect")
        assert redirect is not None
        person = twiml(await call.follow(redirect.text or ""))
        assert verbs(person) == ["Say", "Say", "Dial"]
        assert said(person)[0] == "Sorry, I did not get that."


async def test_an_unknown_or_forged_menu_path_starts_at_the_top(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    top_menu = ["Welcome to Acme.", "For billing, press 1.", "For sales, press 2.", "To leave a message, press 9.",
                "To speak to a person, press 0."]
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        for query in ("step=gather&ivr=77&attempt=0", "step=gather&ivr=11&attempt=0",  # 1-1 is a message
                      "step=gather&ivr=%3CSay%3E&attempt=0", "step=gather&ivr=1&attempt=-5"):
            response = twiml(await call.post("in-progress", query=query, Digits="1"))
            if "ivr=1&" in query:  # a known path with a nonsense attempt count: the billing menu's option 1
                assert said(response)[0] == "We are open 9 to 5."
                continue
            assert menu_of(response) == top_menu, query
            assert response.find("Gather").attrib["action"].endswith("?step=gather&ivr=&attempt=0")  # type: ignore[union-attr]


async def test_configured_text_cannot_inject_twiml(h: Harness, live: Any) -> None:
    evil = '</Say><Dial>+19005550000</Dial><Say>'
    ctx = await h.make_account()
    inbox = await create_inbox(h, ctx, "phone", twilio_config(
        person={"dial": PERSON, "say": f"Hold on {evil}"},
        ivr={"greeting": f"Welcome {evil} & \"friends\"",
             "options": [{"key": "1", "label": f'For "quotes" & {evil}', "action": "say", "text": evil}]}))
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        r = await call.post("ringing")
        assert b"<Dial>+1900" not in r.content and b"&lt;/Say&gt;&lt;Dial&gt;" in r.content
        top = twiml(r)
        assert menu_of(top) == [f'Welcome {evil} & "friends"', f'For "quotes" & {evil}, press 1.',
                                "To speak to a person, press 0."]
        assert [e.tag for e in top.iter()] == ["Response", "Gather", "Say", "Say", "Say", "Redirect"]
        message = await call.press(top, "1")
        assert said(message)[0] == evil
        assert not list(message.iter("Dial"))
        person = await call.press(message, "0")
        assert [n.text for n in person.iter("Number")] == [PERSON]
        assert said(person) == [f"Hold on {evil}"]


async def test_call_events_join_the_callers_sms_conversation(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    sms = await create_inbox(h, ctx, "twilio_sms", twilio_config(phone_number=SMS_NUMBER), name="SMS")
    phone = await _phone(h, ctx)
    async with live_client(live) as client:
        assert (await Webhook(client, sms["public_key"]).post(sms_payload("I'll call you"))).status_code == 200
        (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]

        call = Call(Webhook(client, phone["public_key"]))
        twiml(await call.post("ringing"))
        twiml(await call.post("in-progress", CallbackSource="call-progress-events", SequenceNumber="0"))
        completed = call_payload(call.sid, "completed", CallDuration="125", Duration="3", RecordingUrl=RECORDING_URL,
                                 CallbackSource="call-progress-events", SequenceNumber="1")
        for _ in range(2):  # a retried callback adds nothing
            r = await call.hook.post(completed)
            assert (r.status_code, r.content) == (200, EMPTY_TWIML)

        missed = Call(call.hook)
        twiml(await missed.post("ringing"))
        r = await missed.post("no-answer")
        assert (r.status_code, r.content) == (200, EMPTY_TWIML)

    # One customer, one conversation: the SMS conversation, now with the calls in it.
    assert (await stored(h))[:2] == (1, 1)
    rows = await messages(h, ctx, conversation["id"])
    assert [(m["channel"], m["external_id"].split(":")[-1] if m["channel"] == "phone" else None, m["content"])
            for m in rows] == [
        ("twilio_sms", None, "I'll call you"),
        ("phone", "ringing", f"Incoming call from {CUSTOMER}"),
        ("phone", "answered", f"Call from {CUSTOMER} answered"),
        ("phone", "completed", f"Call with {CUSTOMER} ended after 2:05\nRecording: {RECORDING_URL}"),
        ("phone", "ringing", f"Incoming call from {CUSTOMER}"),
        ("phone", "missed", f"Missed call from {CUSTOMER}: nobody answered"),
    ]
    assert rows[3]["meta"]["call"] == {"sid": call.sid, "event": "completed", "status": "completed",
                                       "duration_seconds": 125, "recording_url": RECORDING_URL, "transcript": None}
    assert rows[3]["external_id"] == f"{call.sid}:completed"
    assert {m["direction"] for m in rows} == {"incoming"}


async def test_withheld_caller_id_is_never_merged_with_anyone(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    async with live_client(live) as client:
        first = Call(Webhook(client, inbox["public_key"]), caller="+266696687")
        second = Call(first.hook, caller="Anonymous")
        twiml(await first.post("ringing"))
        twiml(await second.post("ringing"))
        twiml(await first.post("in-progress"))
    contacts, conversations, count, _ = await stored(h)
    assert (contacts, conversations, count) == (2, 2, 3)
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)
    for conversation in r.json()["items"]:
        first_message = (await messages(h, ctx, conversation["id"]))[0]
        assert first_message["content"] == "Incoming call from a withheld number"


async def test_nobody_answers_so_the_caller_leaves_a_voicemail_with_a_transcript(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    hook_url = inbox["webhook_url"]
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        top = twiml(await call.post("ringing"))
        person = await call.press(top, "0")
        dial = person.find("Dial")
        assert dial is not None

        # Nobody picked up: an apology, then voicemail.
        voicemail = twiml(await call.follow(dial.attrib["action"], DialCallStatus="no-answer", DialCallDuration="0"))
        assert verbs(voicemail) == ["Say", "Say", "Record", "Say", "Hangup"]
        assert said(voicemail)[:2] == ["Sorry, nobody is available to take your call right now.",
                                       "Please leave a message after the tone, then press the pound key or hang up."]
        record = voicemail.find("Record")
        # Recording callbacks carry no caller: their URLs name it (signed by Twilio like any URL).
        caller = "caller=%2B14155550123"
        assert record is not None and record.attrib == {
            "action": f"{hook_url}?step=recorded", "method": "POST", "maxLength": "120", "finishOnKey": "#",
            "playBeep": "true", "recordingStatusCallback": f"{hook_url}?event=recording&{caller}",
            "recordingStatusCallbackMethod": "POST", "transcribe": "true",
            "transcribeCallback": f"{hook_url}?event=transcription&{caller}"}

        recording_sid = "RE" + "7" * 32
        done = twiml(await call.follow(record.attrib["action"], RecordingUrl=RECORDING_URL, RecordingDuration="42",
                                       Digits="#"))
        assert verbs(done) == ["Say", "Hangup"]

        # Twilio's recording status callback and, later, its transcription callback.
        recording = {"AccountSid": ACCOUNT_SID, "CallSid": call.sid, "RecordingSid": recording_sid,
                     "RecordingUrl": RECORDING_URL, "RecordingStatus": "completed", "RecordingDuration": "42",
                     "RecordingChannels": "1", "RecordingStartTime": "Mon, 22 Aug 2026 17:56:11 +0000",
                     "RecordingSource": "RecordVerb", "RecordingTrack": "both", "ErrorCode": "0"}
        transcription = {"TranscriptionSid": "TR" + "8" * 32, "TranscriptionText": "Hi, it's Ana. Please call me back.",
                         "TranscriptionStatus": "completed",
                         "TranscriptionUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Transcriptions/"
                                             "TR" + "8" * 32,
                         "RecordingSid": recording_sid, "RecordingUrl": RECORDING_URL, "CallSid": call.sid,
                         "AccountSid": ACCOUNT_SID, "From": CUSTOMER, "To": SMS_NUMBER, "CallStatus": "completed",
                         "ApiVersion": "2010-04-01", "Direction": "inbound"}
        for _ in range(2):
            r = await call.callback(record.attrib["recordingStatusCallback"], recording)
            assert (r.status_code, r.content) == (200, EMPTY_TWIML)
            r = await call.callback(record.attrib["transcribeCallback"], transcription)
            assert (r.status_code, r.content) == (200, EMPTY_TWIML)
        r = await call.hook.post(call_payload(call.sid, "completed", CallDuration="71"))
        assert r.status_code == 200, r.text

    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    rows = await messages(h, ctx, conversation["id"])
    assert [m["content"] for m in rows] == [
        f"Incoming call from {CUSTOMER}",
        f"Missed call from {CUSTOMER}: nobody answered",
        f"Voicemail (0:42)\nRecording: {RECORDING_URL}",
        f"Voicemail: Hi, it's Ana. Please call me back.\nRecording: {RECORDING_URL}",
        f"Call with {CUSTOMER} ended after 1:11",
    ]
    assert [m["meta"]["call"] for m in rows[2:4]] == [
        {"sid": call.sid, "event": "voicemail", "status": None, "duration_seconds": 42,
         "recording_url": RECORDING_URL, "transcript": None},
        {"sid": call.sid, "event": "voicemail_transcript", "status": "completed", "duration_seconds": None,
         "recording_url": RECORDING_URL, "transcript": "Hi, it's Ana. Please call me back."}]


async def test_voicemail_from_the_menu_without_transcription(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx, voicemail_transcribe=False, voicemail_max_seconds=60)
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        voicemail = await call.press(twiml(await call.post("ringing")), "9")
        record = voicemail.find("Record")
        assert record is not None and "transcribe" not in record.attrib and record.attrib["maxLength"] == "60"
        r = await call.callback(record.attrib["recordingStatusCallback"], {
            "AccountSid": ACCOUNT_SID, "CallSid": call.sid, "RecordingSid": "RE" + "1" * 32,
            "RecordingUrl": RECORDING_URL, "RecordingStatus": "completed", "RecordingDuration": "3725"})
        assert r.status_code == 200, r.text
    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    assert [m["content"] for m in await messages(h, ctx, conversation["id"])][-1] == (
        f"Voicemail (1:02:05)\nRecording: {RECORDING_URL}")


async def test_unanswered_queue_offers_voicemail_and_records_a_missed_call(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx, voicemail_when_unanswered=False)
    async with live_client(live) as client:
        call = Call(Webhook(client, inbox["public_key"]))
        sales = await call.press(twiml(await call.post("ringing")), "2")
        enqueue = sales.find("Enqueue")
        assert enqueue is not None
        bye = twiml(await call.follow(enqueue.attrib["action"], QueueResult="queue-full", QueueTime="0"))
        assert verbs(bye) == ["Say", "Hangup"]
        assert said(bye) == ["Sorry, nobody is available to take your call right now. Please call again later. "
                             "Goodbye."]
        bridged = twiml(await call.follow(enqueue.attrib["action"], QueueResult="bridged", QueueTime="12"))
        assert verbs(bridged) == ["Say", "Hangup"]
    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    assert [m["content"] for m in await messages(h, ctx, conversation["id"])] == [
        f"Incoming call from {CUSTOMER}", f"Missed call from {CUSTOMER}: nobody took the call from the queue"]


async def test_phone_inbox_cannot_send_and_is_not_offered_for_replies(h: Harness, live: Any) -> None:
    ctx = await h.make_account()
    inbox = await _phone(h, ctx)
    async with live_client(live) as client:
        twiml(await Call(Webhook(client, inbox["public_key"])).post("ringing"))
    (conversation,) = (await h.client.get("/api/v1/conversations", headers=ctx.admin.headers)).json()["items"]
    r = await h.client.get(f"/api/v1/conversations/{conversation['id']}/reply-channels", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    assert inbox["id"] not in [c["inbox_id"] for c in r.json()]
    r = await h.client.post(f"/api/v1/conversations/{conversation['id']}/messages", headers=ctx.admin.headers,
                            json={"content": "Calling you back", "inbox_id": inbox["id"]})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "cannot_send"
