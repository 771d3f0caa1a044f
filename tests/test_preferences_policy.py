"""The contact-rules policy as a pure function: an injected clock ("now"), the rules, where the
customer can be reached and when they were last contacted, across time zones and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

import swarmdesk.registrations  # noqa: F401  (channel labels come from the registered adapters)
from swarmdesk.preferences.policy import (
    Cap,
    Channel,
    Outcome,
    Purpose,
    QuietHours,
    Rules,
    channel_label,
    evaluate,
    given_name,
    quiet_until,
)

EMAIL = Channel("email", 1)
SMS = Channel("twilio_sms", 2)
WHATSAPP = Channel("whatsapp", 3)
NIGHT_BERLIN = QuietHours(time(21), time(8), "Europe/Berlin")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def decide(rules: Rules | None, now: datetime, *, requested: Channel = EMAIL, purpose: Purpose = Purpose.outreach,
           reachable: tuple[Channel, ...] = (EMAIL, SMS, WHATSAPP), contacted: tuple[datetime, ...] = ()):  # noqa: ANN201
    return evaluate(rules, name="Ana", purpose=purpose, requested=requested, now=now, reachable=reachable,
                    contacted=contacted)


# --- quiet hours across time zones and DST ---------------------------------------------------------

@pytest.mark.parametrize(("now", "until"), [
    # Winter (CET, UTC+1): 22:30 in Berlin waits for 08:00 the next morning.
    ("2026-11-24T22:30:00+01:00", "2026-11-25T08:00:00+01:00"),
    # After midnight, the same morning.
    ("2026-11-25T06:15:00+01:00", "2026-11-25T08:00:00+01:00"),
    # The start is quiet, the end is not.
    ("2026-11-24T21:00:00+01:00", "2026-11-25T08:00:00+01:00"),
    ("2026-11-25T08:00:00+01:00", None),
    ("2026-11-25T07:59:59+01:00", "2026-11-25T08:00:00+01:00"),
    ("2026-11-24T20:59:59+01:00", None),
    ("2026-11-24T12:00:00+01:00", None),
    # The night clocks go forward (29 March 2026, 02:00 CET -> 03:00 CEST): 08:00 is one hour sooner in UTC.
    ("2026-03-28T22:30:00+01:00", "2026-03-29T08:00:00+02:00"),
    # The night clocks go back (25 October 2026, 03:00 CEST -> 02:00 CET): 08:00 is an hour later in UTC.
    ("2026-10-24T22:30:00+02:00", "2026-10-25T08:00:00+01:00"),
])
def test_overnight_quiet_hours_in_berlin(now: str, until: str | None) -> None:
    expected = at(until) if until else None
    assert quiet_until(NIGHT_BERLIN, at(now)) == expected
    decision = decide(Rules(quiet=NIGHT_BERLIN), at(now))
    if expected is None:
        assert (decision.outcome, decision.send_at) == (Outcome.send, None)
    else:
        assert (decision.outcome, decision.send_at, decision.reasons) == (Outcome.defer, expected, ("quiet_hours",))
        assert decision.explanation == "Ana's quiet hours are 21:00–08:00 (Europe/Berlin): deferred to 08:00"
        assert decision.channel == decision.requested == EMAIL


def test_the_same_instant_is_quiet_in_one_zone_and_not_in_another() -> None:
    now = at("2026-11-24T21:30:00+00:00")  # 22:30 in Berlin, 16:30 in New York, 03:00 in Kolkata
    quiet = {zone: QuietHours(time(22), time(7), zone) for zone in ("Europe/Berlin", "America/New_York", "Asia/Kolkata")}
    assert quiet_until(quiet["Europe/Berlin"], now) == at("2026-11-25T07:00:00+01:00")
    assert quiet_until(quiet["America/New_York"], now) is None
    # Half-hour offsets: 07:00 IST is 01:30 UTC.
    assert quiet_until(quiet["Asia/Kolkata"], now) == at("2026-11-25T01:30:00+00:00")


def test_quiet_hours_within_one_day() -> None:
    lunch = QuietHours(time(12), time(14, 30), "America/New_York")
    assert quiet_until(lunch, at("2026-07-01T12:10:00-04:00")) == at("2026-07-01T14:30:00-04:00")
    assert quiet_until(lunch, at("2026-07-01T11:59:00-04:00")) is None
    assert quiet_until(lunch, at("2026-07-01T14:30:00-04:00")) is None
    assert quiet_until(lunch, at("2026-07-01T23:00:00-04:00")) is None
    decision = decide(Rules(quiet=lunch), at("2026-07-01T13:00:00-04:00"))
    assert decision.explanation == "Ana's quiet hours are 12:00–14:30 (America/New_York): deferred to 14:30"


def test_an_end_the_clocks_skip_is_the_first_instant_after_the_gap() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: the quiet hours end when the clocks jump to 03:00.
    quiet = QuietHours(time(23), time(2, 30), "Europe/Berlin")
    now = at("2026-03-28T23:30:00+01:00")
    assert quiet_until(quiet, now) == at("2026-03-29T03:00:00+02:00") == at("2026-03-29T01:00:00+00:00")
    assert decide(Rules(quiet=quiet), now).explanation.endswith(": deferred to 03:00")
    # In New York (8 March 2026, 02:00 EST -> 03:00 EDT) likewise.
    quiet_ny = QuietHours(time(22), time(2, 15), "America/New_York")
    assert quiet_until(quiet_ny, at("2026-03-07T23:00:00-05:00")) == at("2026-03-08T03:00:00-04:00")


def test_an_end_the_clocks_show_twice_is_the_first_of_the_two_unless_it_is_past() -> None:
    # 02:30 happens twice in Berlin on 25 October 2026 (CEST, then CET).
    quiet = QuietHours(time(23), time(2, 30), "Europe/Berlin")
    assert quiet_until(quiet, at("2026-10-24T23:30:00+02:00")) == at("2026-10-25T02:30:00+02:00")
    # Already in the second pass of the repeated hour (02:15 CET): the first 02:30 is behind us.
    early = QuietHours(time(1), time(2, 30), "Europe/Berlin")
    assert quiet_until(early, at("2026-10-25T02:15:00+01:00")) == at("2026-10-25T02:30:00+01:00")
    assert quiet_until(early, at("2026-10-25T02:15:00+02:00")) == at("2026-10-25T02:30:00+02:00")


# --- channels ------------------------------------------------------------------------------------

def test_a_forbidden_channel_moves_to_the_preferred_one_then_to_any_allowed_one() -> None:
    now = at("2026-11-24T12:00:00+01:00")
    decision = decide(Rules(never_channels=frozenset({"twilio_sms"})), now, requested=SMS)
    assert (decision.outcome, decision.channel, decision.requested) == (Outcome.move, EMAIL, SMS)
    assert decision.explanation == "Ana asked not to be contacted by SMS: moved to Email"
    assert decision.reasons == ("never_channel",) and decision.moved
    # With a preference, there.
    decision = decide(Rules(preferred_channel="whatsapp", never_channels=frozenset({"twilio_sms"})), now,
                      requested=SMS)
    assert (decision.outcome, decision.channel) == (Outcome.move, WHATSAPP)
    assert decision.explanation == "Ana asked not to be contacted by SMS: moved to WhatsApp"
    # Nowhere else to go: refused.
    decision = decide(Rules(never_channels=frozenset({"twilio_sms", "email"})), now, requested=SMS,
                      reachable=(EMAIL, SMS))
    assert decision.outcome == Outcome.refuse
    assert decision.explanation == ("Ana asked not to be contacted by SMS, and cannot be reached on any channel "
                                    "they allow")


def test_a_preferred_channel_wins_where_the_customer_can_be_reached_there() -> None:
    now = at("2026-11-24T12:00:00+01:00")
    decision = decide(Rules(preferred_channel="whatsapp"), now, requested=EMAIL)
    assert (decision.outcome, decision.channel, decision.reasons) == (Outcome.move, WHATSAPP, ("preferred_channel",))
    assert decision.explanation == "Ana prefers WhatsApp: moved from Email to WhatsApp"
    # Not reachable there (no number, or a closed reply window): sent where asked.
    decision = decide(Rules(preferred_channel="whatsapp"), now, requested=EMAIL, reachable=(EMAIL, SMS))
    assert (decision.outcome, decision.channel, decision.explanation) == (Outcome.send, EMAIL,
                                                                          "Within Ana's contact rules")
    # Already there.
    assert decide(Rules(preferred_channel="email"), now).outcome == Outcome.send


def test_a_move_and_quiet_hours_combine() -> None:
    rules = Rules(never_channels=frozenset({"twilio_sms"}), quiet=NIGHT_BERLIN)
    decision = decide(rules, at("2026-11-24T22:30:00+01:00"), requested=SMS)
    assert (decision.outcome, decision.channel, decision.send_at) == (Outcome.defer, EMAIL,
                                                                      at("2026-11-25T08:00:00+01:00"))
    assert decision.reasons == ("never_channel", "quiet_hours")
    assert decision.explanation == ("Ana asked not to be contacted by SMS: moved to Email. Ana's quiet hours are "
                                    "21:00–08:00 (Europe/Berlin): deferred to 08:00")


# --- the cap --------------------------------------------------------------------------------------

def test_the_cap_counts_contacts_within_the_window_and_refuses_beyond_it() -> None:
    now = at("2026-11-24T12:00:00+00:00")
    cap = Rules(cap=Cap(2, 7))
    one = (now - timedelta(days=2),)
    assert decide(cap, now, contacted=one).outcome == Outcome.send
    # Exactly seven days ago is outside "the last 7 days".
    assert decide(cap, now, contacted=(now - timedelta(days=7), now - timedelta(days=1))).outcome == Outcome.send
    two = (now - timedelta(days=6), now - timedelta(hours=3))
    decision = decide(cap, now, contacted=two)
    assert (decision.outcome, decision.reasons) == (Outcome.refuse, ("cap",))
    # The next contact is possible when the older one leaves the window.
    assert decision.send_at == now + timedelta(days=1)
    assert decision.explanation == ("Ana was contacted 2 times in the last 7 days (their limit); the next contact "
                                    "is possible from 25 Nov 2026, 12:00 (UTC)")
    # In the customer's time zone when they gave one; and a cap comes before quiet hours.
    decision = decide(Rules(cap=Cap(1, 1), quiet=NIGHT_BERLIN), at("2026-11-24T22:30:00+01:00"),
                      contacted=(at("2026-11-24T10:00:00+01:00"),))
    assert decision.outcome == Outcome.refuse
    assert decision.explanation == ("Ana was contacted 1 time in the last 1 day (their limit); the next contact is "
                                    "possible from 25 Nov 2026, 10:00 (Europe/Berlin)")


# --- what is not subject ---------------------------------------------------------------------------

def test_a_direct_answer_is_never_deferred_moved_or_refused() -> None:
    rules = Rules(preferred_channel="whatsapp", never_channels=frozenset({"email"}), quiet=NIGHT_BERLIN, cap=Cap(1, 7))
    now = at("2026-11-24T23:00:00+01:00")
    decision = decide(rules, now, purpose=Purpose.reply, contacted=(now - timedelta(hours=1),) * 3)
    assert (decision.outcome, decision.channel, decision.send_at, decision.reasons) == (
        Outcome.send, EMAIL, None, ("not_subject",))
    # Every other purpose is.
    for purpose in (Purpose.outreach, Purpose.reminder, Purpose.survey, Purpose.notification):
        assert decide(rules, now, purpose=purpose).outcome != Outcome.send


def test_no_rules_and_empty_rules_send() -> None:
    now = at("2026-11-24T23:00:00+01:00")
    assert decide(None, now).outcome == decide(Rules(), now).outcome == Outcome.send
    assert decide(None, now).explanation == "Ana has set no contact rules"


def test_names_and_labels() -> None:
    assert [given_name(n) for n in ("Ana Lima", "  Ana ", "", "Chris")] == ["Ana", "Ana", "The customer", "Chris"]
    assert [channel_label(k) for k in ("email", "twilio_sms", "whatsapp", "twilio_whatsapp", "webchat")] == [
        "Email", "SMS", "WhatsApp", "WhatsApp", "Web chat widget"]
    rules = Rules(quiet=NIGHT_BERLIN)
    decision = evaluate(rules, name="Chris", purpose=Purpose.outreach, requested=EMAIL,
                        now=at("2026-11-24T23:00:00+01:00"))
    assert decision.explanation.startswith("Chris' quiet hours")
