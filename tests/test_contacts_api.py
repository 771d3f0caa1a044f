"""Contacts and organizations: CRUD, search, normalised identifiers, conflicts, and how the API
channel resolves a sender to a contact (only verified identifiers ever join an existing one)."""

from __future__ import annotations

from typing import Any

from swarmdesk.accounts.models import Role
from tests.support import ApiInbox, Harness, Staff, inbound_payload

CONTACTS = "/api/v1/contacts"


async def create(h: Harness, who: Staff, status: int = 201, **body: Any) -> dict:
    r = await h.client.post(CONTACTS, headers=who.headers, json=body)
    assert r.status_code == status, r.text
    return r.json()


async def fetch(h: Harness, who: Staff, contact_id: int) -> dict:
    r = await h.client.get(f"{CONTACTS}/{contact_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


def identities(contact: dict) -> list[tuple[str, str, str, bool]]:
    return [(i["kind"], i["scope"], i["value"], i["verified"]) for i in contact["identities"]]


async def search(h: Harness, who: Staff, **params: Any) -> list[int]:
    r = await h.client.get(CONTACTS, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def inbound(h: Harness, inbox: ApiInbox, source_id: str, **contact: Any) -> dict:
    payload = inbound_payload(source_id=source_id)
    payload["contact"].update(contact)
    r = await h.deliver(inbox, payload)
    assert r.status_code == 200, r.text
    return r.json()


# --- CRUD ---------------------------------------------------------------------------------------

async def test_contact_crud(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    c = await create(h, agent, name="Ana Lima", email="  Ana@Example.COM ", phone="+49 (151) 2345-6789",
                     custom_attributes={"plan": "pro", "seats": 5})
    assert (c["name"], c["email"], c["phone"], c["organization_id"], c["custom_attributes"]) == (
        "Ana Lima", "ana@example.com", "+4915123456789", None, {"plan": "pro", "seats": 5})
    # An agent vouches for what they type: recorded as verified identities.
    assert identities(c) == [("email", "", "ana@example.com", True), ("phone", "", "+4915123456789", True)]
    assert await fetch(h, agent, c["id"]) == c

    r = await h.client.patch(f"{CONTACTS}/{c['id']}", headers=agent.headers,
                             json={"name": "Ana L.", "phone": "+44 20 7946 0958",
                                   "custom_attributes": {"seats": 6, "region": "EU"}})
    assert r.status_code == 200, r.text
    got = await fetch(h, agent, c["id"])
    assert (got["name"], got["email"], got["phone"], got["custom_attributes"]) == (
        "Ana L.", "ana@example.com", "+442079460958", {"plan": "pro", "seats": 6, "region": "EU"})
    assert identities(got) == [("email", "", "ana@example.com", True), ("phone", "", "+4915123456789", True),
                               ("phone", "", "+442079460958", True)]
    assert got["updated_at"] >= c["updated_at"] and got["created_at"] == c["created_at"]

    # Only the fields present change; null clears.
    r = await h.client.patch(f"{CONTACTS}/{c['id']}", headers=agent.headers, json={"phone": None})
    assert (r.json()["phone"], r.json()["email"], r.json()["name"]) == (None, "ana@example.com", "Ana L.")

    bare = await create(h, agent)
    assert (bare["name"], bare["email"], bare["phone"], bare["identities"]) == ("", None, None, [])
    assert await search(h, agent) == [bare["id"], c["id"]]

    for body in ({"nickname": "x"}, {"custom_attributes": {"nested": {"a": 1}}}, {"name": "x" * 201}):
        r = await h.client.post(CONTACTS, headers=agent.headers, json=body)
        assert r.status_code == 422, body
    r = await h.client.patch(f"{CONTACTS}/{c['id']}", headers=agent.headers, json={"custom_attributes": {"k": [1]}})
    assert r.status_code == 422
    assert (await fetch(h, agent, c["id"]))["custom_attributes"] == {"plan": "pro", "seats": 6, "region": "EU"}


async def test_contacts_are_per_account_and_for_staff_only(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    reader = await h.make_user(ctx, "reader", scopes=["contacts:read"])
    mine = await create(h, ctx.admin, name="Mine")
    theirs = await create(h, other.admin, name="Theirs")
    assert await search(h, ctx.admin) == [mine["id"]]
    assert (await h.client.get(f"{CONTACTS}/{theirs['id']}", headers=ctx.admin.headers)).status_code == 404
    r = await h.client.patch(f"{CONTACTS}/{theirs['id']}", headers=ctx.admin.headers, json={"name": "Stolen"})
    assert r.status_code == 404
    assert (await fetch(h, other.admin, theirs["id"]))["name"] == "Theirs"

    assert (await h.client.get(CONTACTS, headers=expert.headers)).status_code == 403
    assert (await h.client.get(f"{CONTACTS}/{mine['id']}", headers=expert.headers)).status_code == 403
    assert await search(h, reader) == [mine["id"]]
    r = await h.client.patch(f"{CONTACTS}/{mine['id']}", headers=reader.headers, json={"name": "Changed"})
    assert (r.status_code, r.json()["detail"]) == (403, "this API token lacks the 'contacts:write' scope")
    assert (await fetch(h, ctx.admin, mine["id"]))["name"] == "Mine"


# --- search -------------------------------------------------------------------------------------

async def test_search(h: Harness) -> None:
    ctx = await h.make_account()
    admin = ctx.admin
    inbox = await h.make_api_inbox(ctx)
    ana = await create(h, admin, name="Ana Lima", email="ana@example.com")
    bruno = await create(h, admin, name="Bruno", phone="+4915123456789")
    carla = (await inbound(h, inbox, "CRM-77", name="Carla Souza"))["contact_id"]
    # An unverified phone (untrusted API inbox) is on the profile, not an identity.
    dora = (await inbound(h, inbox, "crm-78", name="Dora", phone="+14155552671"))["contact_id"]
    eve = await create(h, admin, name="Eve_100%", email="eve@shop.example.org")

    assert await search(h, admin, q="ana") == [ana["id"]]
    assert await search(h, admin, q="LIMA") == [ana["id"]]
    assert await search(h, admin, q="Example.com") == [ana["id"]]
    assert await search(h, admin, q="example") == [eve["id"], ana["id"]]
    assert await search(h, admin, q="+49151") == [bruno["id"]]
    assert await search(h, admin, q="4155552671") == [dora]
    assert await search(h, admin, q="CRM-77") == [carla]  # the channel's own handle, any case
    assert await search(h, admin, q="crm-7") == [dora, carla]
    assert await search(h, admin, q="souza") == [carla]
    # LIKE wildcards in the query are plain characters.
    assert await search(h, admin, q="%") == [eve["id"]]
    assert await search(h, admin, q="_1") == [eve["id"]]
    assert await search(h, admin, q="nobody") == []

    everyone = [eve["id"], dora, carla, bruno["id"], ana["id"]]
    assert await search(h, admin) == everyone
    seen, cursor = [], None
    while True:
        r = await h.client.get(CONTACTS, headers=admin.headers, params={"limit": 2} | ({"cursor": cursor} if cursor
                                                                                     else {}))
        seen += [c["id"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == everyone
    assert (await h.client.get(CONTACTS, headers=admin.headers, params={"cursor": "abc"})).status_code == 400


# --- organizations ------------------------------------------------------------------------------

async def test_organizations(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    admin = ctx.admin.headers
    r = await h.client.post("/api/v1/organizations", headers=admin,
                            json={"name": "Globex", "domain": "globex.example", "custom_attributes": {"tier": 1}})
    assert r.status_code == 201, r.text
    globex = r.json()
    assert (globex["name"], globex["domain"], globex["custom_attributes"]) == ("Globex", "globex.example", {"tier": 1})
    r = await h.client.post("/api/v1/organizations", headers=admin, json={"name": "Globex"})
    assert (r.status_code, r.json()["detail"], r.json()["organization_id"]) == (
        409, "an organization named 'Globex' already exists", globex["id"])
    initech = (await h.client.post("/api/v1/organizations", headers=admin, json={"name": "Initech"})).json()
    theirs = (await h.client.post("/api/v1/organizations", headers=other.admin.headers, json={"name": "Globex"}))
    assert theirs.status_code == 201
    theirs_id = theirs.json()["id"]

    listed = (await h.client.get("/api/v1/organizations", headers=admin)).json()
    assert [o["id"] for o in listed["items"]] == [initech["id"], globex["id"]]
    assert (await h.client.get(f"/api/v1/organizations/{globex['id']}", headers=admin)).json() == globex
    assert (await h.client.get(f"/api/v1/organizations/{theirs_id}", headers=admin)).status_code == 404

    hank = await create(h, ctx.admin, name="Hank", organization_id=globex["id"])
    await create(h, ctx.admin, name="Ivy", organization_id=initech["id"])
    assert hank["organization_id"] == globex["id"]
    assert await search(h, ctx.admin, organization_id=globex["id"]) == [hank["id"]]

    r = await h.client.post(CONTACTS, headers=admin, json={"name": "Joe", "organization_id": theirs_id})
    assert (r.status_code, r.json()["detail"]) == (422, f"organization {theirs_id} does not exist in this account")
    r = await h.client.patch(f"{CONTACTS}/{hank['id']}", headers=admin, json={"organization_id": theirs_id})
    assert r.status_code == 422
    assert (await fetch(h, ctx.admin, hank["id"]))["organization_id"] == globex["id"]
    r = await h.client.patch(f"{CONTACTS}/{hank['id']}", headers=admin, json={"organization_id": initech["id"]})
    assert r.json()["organization_id"] == initech["id"]
    assert await search(h, ctx.admin, organization_id=globex["id"]) == []


# --- identifiers --------------------------------------------------------------------------------

async def test_phone_and_email_are_validated(h: Harness) -> None:
    ctx = await h.make_account()
    good = {"+1 (415) 555-2671": "+14155552671", "+44 20 7946 0958": "+442079460958",
            "tel:+4915123456789": "+4915123456789"}
    for raw, e164 in good.items():
        assert (await create(h, ctx.admin, phone=raw))["phone"] == e164

    for phone in ("12345", "0049 151 23456789", "+1 555", "+abc", "+999 12345"):
        r = await h.client.post(CONTACTS, headers=ctx.admin.headers, json={"name": "X", "phone": phone})
        assert r.status_code == 422, phone
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "phone"]]
    for email in ("ana@", "ana example.com", "a@b", "@example.com"):
        r = await h.client.post(CONTACTS, headers=ctx.admin.headers, json={"name": "X", "email": email})
        assert r.status_code == 422, email
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "email"]]
    assert len(await search(h, ctx.admin)) == 3

    c = await create(h, ctx.admin, name="Kim", email="kim@example.com", phone="+14155550100")
    for body in ({"phone": "555-0100"}, {"email": "kim(at)example.com"}):
        r = await h.client.patch(f"{CONTACTS}/{c['id']}", headers=ctx.admin.headers, json=body)
        assert r.status_code == 422, body
    got = await fetch(h, ctx.admin, c["id"])
    assert (got["email"], got["phone"]) == ("kim@example.com", "+14155550100")


async def test_identity_conflicts(h: Harness) -> None:
    ctx = await h.make_account()
    admin = ctx.admin.headers
    ana = await create(h, ctx.admin, name="Ana", email="ana@example.com", phone="+4915123456789")
    r = await h.client.post(CONTACTS, headers=admin, json={"name": "Ana 2", "email": "ANA@example.com"})
    assert r.status_code == 409, r.text
    assert (r.json()["detail"], r.json()["contact_id"]) == (f"ana@example.com already belongs to contact {ana['id']}",
                                                            ana["id"])
    r = await h.client.post(CONTACTS, headers=admin, json={"name": "Ana 3", "phone": "+49 151 23456789"})
    assert (r.status_code, r.json()["contact_id"]) == (409, ana["id"])
    assert await search(h, ctx.admin) == [ana["id"]]

    bea = await create(h, ctx.admin, name="Bea", email="bea@example.com")
    r = await h.client.patch(f"{CONTACTS}/{bea['id']}", headers=admin, json={"email": "ana@example.com", "name": "B"})
    assert (r.status_code, r.json()["contact_id"]) == (409, ana["id"])
    r = await h.client.patch(f"{CONTACTS}/{bea['id']}", headers=admin, json={"phone": "+4915123456789"})
    assert r.status_code == 409
    got = await fetch(h, ctx.admin, bea["id"])
    assert (got["name"], got["email"], got["phone"]) == ("Bea", "bea@example.com", None)
    assert identities(got) == [("email", "", "bea@example.com", True)]

    # Re-saving a contact's own identifier is not a conflict.
    r = await h.client.patch(f"{CONTACTS}/{ana['id']}", headers=admin, json={"email": "ana@example.com"})
    assert r.status_code == 200
    assert identities(await fetch(h, ctx.admin, ana["id"])) == identities(ana)

    # An address only typed into a widget (unverified) belongs to nobody: an agent may use it.
    inbox = await h.make_api_inbox(ctx)
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                            json={"name": "Widget", "email": "cleo@example.com"})
    visitor = r.json()["contact_id"]
    cleo = await create(h, ctx.admin, name="Cleo", email="cleo@example.com")
    assert cleo["id"] != visitor
    # Another account may hold the same identifiers.
    other = await h.make_account("Other")
    await create(h, other.admin, name="Ana elsewhere", email="ana@example.com", phone="+4915123456789")


# --- identity resolution through the API channel -----------------------------------------------

async def test_same_source_id_joins_the_same_contact(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    other_inbox = await h.make_api_inbox(ctx)
    first = await inbound(h, inbox, "user-1", name="Ana")
    again = await inbound(h, inbox, "user-1", name="Someone Else")
    assert again["contact_id"] == first["contact_id"]
    assert again["conversation_id"] == first["conversation_id"]
    different = await inbound(h, inbox, "user-2")
    assert different["contact_id"] != first["contact_id"]
    # A source id is your system's id, scoped to the inbox it came through.
    elsewhere = await inbound(h, other_inbox, "user-1")
    assert elsewhere["contact_id"] not in (first["contact_id"], different["contact_id"])

    c = await fetch(h, ctx.admin, first["contact_id"])
    assert c["name"] == "Ana"  # a later message does not rename the customer
    assert identities(c) == [("handle", f"inbox:{inbox.id}", "user-1", True)]


async def test_unverified_email_never_joins_another_contact(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx, trust=False)
    ana = await create(h, ctx.admin, name="Ana", email="ana@example.com", phone="+4915123456789")
    got = await inbound(h, inbox, "impostor", name="Not Ana", email="ANA@example.com", phone="+4915123456789")
    assert got["contact_id"] != ana["id"]
    impostor = await fetch(h, ctx.admin, got["contact_id"])
    # Kept on the new contact's profile for the agent to see, but not as an identity.
    assert (impostor["name"], impostor["email"], impostor["phone"]) == ("Not Ana", "ana@example.com",
                                                                       "+4915123456789")
    assert identities(impostor) == [("handle", f"inbox:{inbox.id}", "impostor", True)]
    assert identities(await fetch(h, ctx.admin, ana["id"])) == identities(ana)
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers, params={"contact_id": ana["id"]})
    assert r.json()["items"] == []

    # The same for a widget visitor typing someone's email.
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                            json={"name": "Visitor", "email": "ana@example.com"})
    assert r.status_code == 201
    visitor = await fetch(h, ctx.admin, r.json()["contact_id"])
    assert visitor["id"] not in (ana["id"], impostor["id"])
    assert (visitor["email"], visitor["identities"]) == ("ana@example.com", [])


async def test_trusted_identifiers_join_the_existing_contact(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx, trust=True)
    ana = await create(h, ctx.admin, name="Ana", email="ana@example.com")
    bruno = await create(h, ctx.admin, name="Bruno", phone="+4915123456789")

    got = await inbound(h, inbox, "crm-1", name="Ana from CRM", email="Ana@Example.com")
    assert got["contact_id"] == ana["id"]
    c = await fetch(h, ctx.admin, ana["id"])
    assert c["name"] == "Ana"
    assert identities(c) == [("email", "", "ana@example.com", True), ("handle", f"inbox:{inbox.id}", "crm-1", True)]
    # Later messages carrying only the source id find her too.
    assert (await inbound(h, inbox, "crm-1"))["contact_id"] == ana["id"]
    r = await h.client.get("/api/v1/conversations", headers=ctx.admin.headers, params={"contact_id": ana["id"]})
    assert [c["id"] for c in r.json()["items"]] == [got["conversation_id"]]

    assert (await inbound(h, inbox, "crm-2", phone="+49 151 2345 6789"))["contact_id"] == bruno["id"]

    # A new, trusted email makes a new contact that owns it: the next sender with it joins.
    fresh = await inbound(h, inbox, "crm-3", name="Zoe", email="zoe@example.com")
    assert fresh["contact_id"] not in (ana["id"], bruno["id"])
    zoe = await fetch(h, ctx.admin, fresh["contact_id"])
    assert identities(zoe) == [("handle", f"inbox:{inbox.id}", "crm-3", True), ("email", "", "zoe@example.com", True)]
    assert (await inbound(h, inbox, "crm-4", email="zoe@example.com"))["contact_id"] == zoe["id"]
    r = await h.client.post(CONTACTS, headers=ctx.admin.headers, json={"email": "zoe@example.com"})
    assert (r.status_code, r.json()["contact_id"]) == (409, zoe["id"])


async def test_invalid_identifiers_from_the_api_channel_are_refused(h: Harness) -> None:
    ctx = await h.make_account()
    inbox = await h.make_api_inbox(ctx)
    for contact in ({"email": "not-an-email"}, {"phone": "12345"}, {"source_id": ""}):
        payload = inbound_payload(source_id="u-1")
        payload["contact"].update(contact)
        r = await h.deliver(inbox, payload)
        assert r.status_code == 422, contact
        assert r.json()["detail"] == "the message payload is not valid"
    assert await search(h, ctx.admin) == []
