"""The phone inbox's IVR: its configuration and the TwiML for each step of a call.

A menu has a greeting and options (key -> label -> action: a submenu, a message read out, voicemail,
or a person). A person is always one key away: every level gets the person key (``0`` unless
configured), and a menu that uses that key for anything else is refused. A caller who presses
nothing or a key that means nothing hears the menu again, at most ``max_retries`` times, and is
then put through to a person.

Every ``<Gather>`` posts back to the inbox's webhook with the menu's path in the query
(``?step=gather&ivr=12&try=0``), so each answer renders the next level without any state kept
between requests; a path that names no menu starts again at the top. TwiML is built as an element
tree: configured text can never become markup.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Annotated, Literal, Self
from urllib.parse import urlencode

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from swarmdesk.contacts.identity import Phone

KEY_PATTERN = r"^[0-9*#]$"
MAX_DEPTH = 5
_NOT_IN_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SPOKEN_KEYS = {"*": "star", "#": "pound"}


def _speakable(value: str) -> str:
    value = value.strip()
    if _NOT_IN_XML.search(value):
        raise ValueError("contains control characters, which cannot be spoken")
    return value


Speech = Annotated[str, AfterValidator(_speakable)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PersonTarget(_Model):
    """Where "speak to a person" goes: a phone number (``<Dial>``) or a Twilio queue (``<Enqueue>``)."""

    dial: Phone | None = Field(default=None, description="a number to call, E.164")
    queue: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.-]+$",
                              description="a Twilio queue that agents take calls from")
    say: Speech = Field(default="Please hold while we connect you to a person.", max_length=500)

    @model_validator(mode="after")
    def _one_destination(self) -> Self:
        if (self.dial is None) == (self.queue is None):
            raise ValueError("set exactly one of dial (a phone number) or queue (a queue name)")
        return self


class _Option(_Model):
    key: str = Field(pattern=KEY_PATTERN, description="the key the caller presses: 0-9, * or #")
    label: Speech = Field(min_length=1, max_length=300,
                          description="said before 'press <key>', e.g. 'For billing questions'")


class SubmenuOption(_Option):
    action: Literal["menu"]
    menu: Menu


class SayOption(_Option):
    action: Literal["say"]
    text: Speech = Field(min_length=1, max_length=2000, description="read out, then the menu is offered again")


class VoicemailOption(_Option):
    action: Literal["voicemail"]


class PersonOption(_Option):
    action: Literal["person"]
    person: PersonTarget | None = Field(default=None, description="another destination than the inbox's person")


MenuOption = Annotated[SubmenuOption | SayOption | VoicemailOption | PersonOption, Field(discriminator="action")]


class Menu(_Model):
    greeting: Speech = Field(min_length=1, max_length=1000)
    options: list[MenuOption] = Field(default_factory=list, max_length=11)

    @model_validator(mode="after")
    def _unique_keys(self) -> Self:
        keys = [o.key for o in self.options]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"key {', '.join(repeated)} is used twice in the menu {self.greeting[:40]!r}")
        return self

    def option(self, key: str) -> SubmenuOption | SayOption | VoicemailOption | PersonOption | None:
        return next((o for o in self.options if o.key == key), None)


SubmenuOption.model_rebuild()


class IvrSettings(_Model):
    """The parts of a phone inbox's config that shape calls."""

    ivr: Menu = Field(description="the top menu; options may open submenus")
    person: PersonTarget = Field(description="where 'speak to a person' goes, from every menu")
    person_key: str = Field(default="0", pattern=KEY_PATTERN, validate_default=True,
                            description="offered at every level of the menu")
    person_label: Speech = Field(default="To speak to a person", min_length=1, max_length=300)
    max_retries: int = Field(default=2, ge=0, le=5,
                             description="how often a menu is repeated after no or a wrong key, before a person")
    gather_timeout_seconds: int = Field(default=5, ge=1, le=30)
    dial_timeout_seconds: int = Field(default=30, ge=5, le=120)
    voice: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$",
                              description="Twilio <Say> voice, e.g. Polly.Joanna")
    language: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", description="e.g. en-US")
    voicemail_prompt: Speech = Field(
        default="Please leave a message after the tone, then press the pound key or hang up.", max_length=500)
    voicemail_max_seconds: int = Field(default=120, ge=5, le=3600,
                                       description="Twilio transcribes recordings of up to 120 seconds")
    voicemail_transcribe: bool = True
    voicemail_when_unanswered: bool = Field(default=True, description="offer voicemail when nobody picks up")

    @field_validator("person_key")
    @classmethod
    def _person_key_is_free(cls, person_key: str, info: ValidationInfo) -> str:
        # A field validator (after ``ivr``), not a model one, whose error would echo the whole
        # config, secrets included.
        def walk(menu: Menu, path: str) -> None:
            if len(path) > MAX_DEPTH:
                raise ValueError(f"menus nest at most {MAX_DEPTH} levels deep")
            for option in menu.options:
                if option.key == person_key:
                    where = f"the menu at keys {path!r}" if path else "the top menu"
                    raise ValueError(f"key {option.key} in {where} is the person key: a person must stay one key "
                                     "away at every level, so choose another key (or another person_key)")
                if isinstance(option, SubmenuOption):
                    walk(option.menu, path + option.key)

        menu = info.data.get("ivr")
        if isinstance(menu, Menu):
            walk(menu, "")
        return person_key

    def menu_at(self, path: str) -> Menu | None:
        """The menu the keys in ``path`` lead to from the top; None if they lead nowhere."""
        if len(path) > MAX_DEPTH or not re.fullmatch(r"[0-9*#]*", path):
            return None
        menu = self.ivr
        for key in path:
            option = menu.option(key)
            if not isinstance(option, SubmenuOption):
                return None
            menu = option.menu
        return menu


# --- TwiML ----------------------------------------------------------------------------------------

class IvrRenderer:
    """The TwiML for each step of a call, with callbacks to ``hook`` (the inbox's webhook URL).
    ``caller`` goes into the recording callbacks' URLs, which carry no caller of their own (Twilio
    signs the URL it calls, so the value cannot be forged)."""

    def __init__(self, settings: IvrSettings, hook: str, caller: str = "") -> None:
        self.s = settings
        self.hook = hook
        self.caller = caller

    def url(self, **query: str) -> str:
        return f"{self.hook}?{urlencode(query)}"

    def _say(self, parent: ET.Element, text: str) -> None:
        say = ET.SubElement(parent, "Say")
        if self.s.voice:
            say.set("voice", self.s.voice)
        if self.s.language:
            say.set("language", self.s.language)
        say.text = text

    def menu(self, path: str = "", attempt: int = 0, *, before: Sequence[str] = ()) -> ET.Element:
        """A menu level: what is said first (``before``), then the greeting and the options, the
        person key last; the key pressed (or none) is posted back with the path."""
        menu = self.s.menu_at(path)
        if menu is None:
            path, attempt, menu = "", 0, self.s.ivr
        response = ET.Element("Response")
        for line in before:
            self._say(response, line)
        action = self.url(step="gather", ivr=path, attempt=str(attempt))
        gather = ET.SubElement(response, "Gather", {
            "numDigits": "1", "action": action, "method": "POST", "timeout": str(self.s.gather_timeout_seconds),
            "actionOnEmptyResult": "true"})
        self._say(gather, menu.greeting)
        for option in menu.options:
            self._say(gather, _prompt(option.label, option.key))
        self._say(gather, _prompt(self.s.person_label, self.s.person_key))
        # Reached only if Twilio skips the empty-result callback: the same "no key" answer.
        ET.SubElement(response, "Redirect", {"method": "POST"}).text = action
        return response

    def answer(self, path: str, attempt: int, digits: str) -> ET.Element:
        """The next step after the caller pressed ``digits`` (or nothing) in the menu at ``path``."""
        menu = self.s.menu_at(path)
        if menu is None:
            return self.menu()
        if digits == self.s.person_key:
            return self.person()
        option = menu.option(digits) if len(digits) == 1 else None
        if option is None:
            sorry = "Sorry, I did not get that." if not digits else "Sorry, that is not one of the options."
            if attempt >= self.s.max_retries:
                return self.person(before=[sorry])
            return self.menu(path, attempt + 1, before=[sorry])
        if isinstance(option, SubmenuOption):
            return self.menu(path + option.key)
        if isinstance(option, SayOption):
            return self.menu(path, before=[option.text])
        if isinstance(option, VoicemailOption):
            return self.voicemail()
        return self.person(option.person)

    def person(self, target: PersonTarget | None = None, *, before: Sequence[str] = ()) -> ET.Element:
        target = target or self.s.person
        response = ET.Element("Response")
        for line in before:
            self._say(response, line)
        self._say(response, target.say)
        if target.dial is not None:
            dial = ET.SubElement(response, "Dial", {"action": self.url(step="dial"), "method": "POST",
                                                     "timeout": str(self.s.dial_timeout_seconds)})
            ET.SubElement(dial, "Number").text = target.dial
        else:
            assert target.queue is not None
            ET.SubElement(response, "Enqueue", {"action": self.url(step="queue"), "method": "POST"}).text = target.queue
        return response

    def unanswered(self) -> ET.Element:
        """Nobody took the call: voicemail, or an apology."""
        sorry = "Sorry, nobody is available to take your call right now."
        if self.s.voicemail_when_unanswered:
            return self.voicemail(before=[sorry])
        return self.goodbye(f"{sorry} Please call again later. Goodbye.")

    def voicemail(self, *, before: Sequence[str] = ()) -> ET.Element:
        response = ET.Element("Response")
        for line in before:
            self._say(response, line)
        self._say(response, self.s.voicemail_prompt)
        record = ET.SubElement(response, "Record", {
            "action": self.url(step="recorded"), "method": "POST", "maxLength": str(self.s.voicemail_max_seconds),
            "finishOnKey": "#", "playBeep": "true",
            "recordingStatusCallback": self.url(event="recording", caller=self.caller),
            "recordingStatusCallbackMethod": "POST"})
        if self.s.voicemail_transcribe:
            record.set("transcribe", "true")
            record.set("transcribeCallback", self.url(event="transcription", caller=self.caller))
        # Twilio goes on here only when the recording is empty.
        self._say(response, "We did not get a message. Goodbye.")
        ET.SubElement(response, "Hangup")
        return response

    def goodbye(self, text: str = "Thank you. We will get back to you soon. Goodbye.") -> ET.Element:
        response = ET.Element("Response")
        self._say(response, text)
        ET.SubElement(response, "Hangup")
        return response


def _prompt(label: str, key: str) -> str:
    return f"{label.rstrip(' .,;:')}, press {_SPOKEN_KEYS.get(key, key)}."
