"""One customer: merge suggestions on weak evidence (scored, with reasons an agent can read), merges
that move identities and conversations, and their undo."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from swarmdesk.accounts.models import Role
from swarmdesk.contacts import actions
from swarmdesk.contacts.matching import SUGGEST_JOB
from swarmdesk.contacts.models import ContactMergeSuggestion, CustomerSession
from swarmdesk.core.clock import utcnow
from swarmdesk.core.security import CUSTOMER_TOKEN_PREFIX, new_token, token_digest
from swarmdesk.events.base import Audience
from swarmdesk.events.types import ContactUpdated, ConversationUpdated
from tests.support import AccountCtx, ApiInbox, Harness, Staff, inbound_payload

CONTACTS = "/api/v1/contacts"
QUEUE = "/api/v1/merge-suggestions"
STAFF = Audience(roles=("admin", "supervisor"), all_agents=True)


async def create(h: Harness, who: Staff, **body: Any) -> dict:
    r = await h.client.post(CONTACTS, headers=who.headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def fetch(h: Harness, who: Staff, contact_id: int) -> dict:
    r = await h.client.get(f"{CONTACTS}/{contact_id}", headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def inbound(h: Harness, inbox: ApiInbox, source_id: str, **contact: Any) -> dict:
    extra = {"conversation_key": contact.pop("conversation_key")} if "conversation_key" in contact else {}
    payload = inbound_payload(source_id=source_id, **extra)
    payload["contact"].update(contact)
    r = await h.deliver(inbox, payload)
    assert r.status_code == 200, r.text
    return r.json()


async def queue(h: Harness, who: Staff, **params: Any) -> list[dict]:
    r = await h.client.get(QUEUE, headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def pairs(items: list[dict]) -> list[tuple[int, int, float, list[str]]]:
    return [(s["contact"]["id"], s["candidate"]["id"], s["score"], s["reasons"]) for s in items]


async def conversation_ids(h: Harness, who: Staff, contact_id: int) -> list[int]:
    r = await h.client.get("/api/v1/conversations", headers=who.headers, params={"contact_id": contact_id})
    assert r.status_code == 200, r.text
    return sorted(c["id"] for c in r.json()["items"])


async def suggest_jobs(h: Harness, ctx: AccountCtx) -> list[dict]:
    r = await h.client.get("/api/v1/jobs", headers=ctx.admin.headers)
    assert r.status_code == 200, r.text
    return [j for j in r.json()["items"] if j["kind"] == SUGGEST_JOB]


async def activity_verbs(h: Harness, who: Staff, conversation_id: int) -> list[tuple[str, dict]]:
    r = await h.client.get(f"/api/v1/conversations/{conversation_id}/activity", headers=who.headers)
    assert r.status_code == 200, r.text
    return [(a["verb"], a["data"]) for a in r.json()["items"] if a["verb"].startswith("contact_")]


def identity_view(contact: dict) -> list[tuple[int, str, str, str]]:
    return [(i["id"], i["kind"], i["scope"], i["value"]) for i in contact["identities"]]


def profile(contact: dict) -> tuple:
    return (contact["name"], contact["email"], contact["phone"], contact["organization_id"],
            contact["custom_attributes"], contact["merged_into_id"])


# --- evidence and scores --------------------------------------------------------------------------

async def test_typed_phone_and_email_against_verified_ones(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)  # untrusted: email and phone stay unverified profile fields
    ana = await create(h, agent, name="Ana Lima", email="ana@acme.example", phone="+4915123456789")
    # Formatting and the trunk prefix do not matter: both normalise to the same E.164 number.
    web = (await inbound(h, inbox, "web-1", name="A. L.", phone="+49 (0151) 2345-6789"))["contact_id"]
    form = (await inbound(h, inbox, "web-2", name="Someone", email="ANA@acme.example"))["contact_id"]
    assert await queue(h, agent) == []  # nothing is computed inline
    await h.run_jobs()
    assert sorted(pairs(await queue(h, agent)), reverse=True) == [  # jobs may run in any order
        (form, ana["id"], 0.8, ["same email address ana@acme.example: typed in (unverified) on this contact, "
                                "verified on the other"]),
        (web, ana["id"], 0.8, ["same phone number +4915123456789: typed in (unverified) on this contact, "
                               "verified on the other"]),
    ]
    # Two forms typed the same number: weaker, verified on neither.
    other = (await inbound(h, inbox, "web-3", name="X", phone="+4915123456789"))["contact_id"]
    await h.run_jobs()
    got = {(s["contact"]["id"], s["candidate"]["id"]): (s["score"], s["reasons"]) for s in await queue(h, agent)}
    assert got[(other, web)] == (0.6, ["same phone number +4915123456789: typed in on both, verified on neither"])
    assert got[(other, ana["id"])][0] == 0.8
    # Never merged automatically: every contact is still there, unmerged.
    assert [(await fetch(h, agent, c))["merged_into_id"] for c in (ana["id"], web, form, other)] == [None] * 4


async def test_phone_with_another_country_code_or_the_same_tail(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    ana = await create(h, agent, name="Ana", phone="+4915123456789")
    wrong_code = (await inbound(h, inbox, "web-1", name="B", phone="+43 151 23456789"))["contact_id"]
    await h.run_jobs()
    assert pairs(await queue(h, agent)) == [(wrong_code, ana["id"], 0.7, [
        "phone numbers +4315123456789 (this contact) and +4915123456789 (the other) are the same national "
        "number 15123456789 with another country code"])]
    r = await h.client.post(f"{QUEUE}/{(await queue(h, agent))[0]['id']}/dismiss", headers=agent.headers)
    assert r.status_code == 200 and r.json()["status"] == "dismissed"

    tail = (await inbound(h, inbox, "web-2", name="C", phone="+49 1521 23456789"))["contact_id"]
    await h.run_jobs()
    assert sorted(pairs(await queue(h, agent))) == [
        (tail, ana["id"], 0.55, ["phone numbers +49152123456789 (this contact) and +4915123456789 (the other) end "
                                 "in the same 9 digits"]),
        (tail, wrong_code, 0.55, ["phone numbers +49152123456789 (this contact) and +4315123456789 (the other) end "
                                  "in the same 9 digits"])]
    # Seven digits in common are not enough.
    await inbound(h, inbox, "web-3", name="D", phone="+4917003456789")
    await h.run_jobs()
    assert len(await queue(h, agent)) == 2


async def test_same_name_and_organization(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    org = (await h.client.post("/api/v1/organizations", headers=agent.headers, json={"name": "Globex"})).json()
    other_org = (await h.client.post("/api/v1/organizations", headers=agent.headers, json={"name": "Initech"})).json()
    jose = await create(h, agent, name="José Silva", organization_id=org["id"])
    await create(h, agent, name="José Silva", organization_id=other_org["id"])  # another company
    await create(h, agent, name="Jose Silvan", organization_id=org["id"])  # another name
    twin = await create(h, agent, name="JOSE   silva", organization_id=org["id"])
    await h.run_jobs()
    assert pairs(await queue(h, agent)) == [
        (twin["id"], jose["id"], 0.6, ['same name "JOSE   silva" at the same organization, Globex'])]


async def test_name_and_company_domain_is_weak_evidence(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    kim = await create(h, agent, name="Kim Park", email="kim@initech.example")
    namesake = await create(h, agent, name="kim park", email="k.park@initech.example")
    await create(h, agent, name="Kim Park", email="kim.park@gmail.com")
    await create(h, agent, name="Kim Park", email="kpark@gmail.com")  # a free-mail domain says nothing
    await h.run_jobs()
    assert await queue(h, agent) == []  # 0.35 alone stays below the 0.5 threshold

    # With the same organization on both, the two pieces of evidence combine: 1 - 0.4 * 0.65.
    org = (await h.client.post("/api/v1/organizations", headers=agent.headers, json={"name": "Initech"})).json()
    for c in (kim, namesake):
        r = await h.client.patch(f"{CONTACTS}/{c['id']}", headers=agent.headers, json={"organization_id": org["id"]})
        assert r.status_code == 200, r.text
    await h.run_jobs()
    assert pairs(await queue(h, agent)) == [(namesake["id"], kim["id"], 0.74, [
        'same name "kim park" at the same organization, Initech',
        'same name "kim park" and email addresses at the same company domain, initech.example'])]


async def test_unrelated_contacts_and_other_accounts_get_no_suggestion(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    agent = await h.make_user(ctx, "agent")
    await create(h, agent, name="Ana", email="ana@gmail.com", phone="+4915123456789")
    await create(h, agent, name="Bruno", email="bruno@gmail.com", phone="+14155552671")
    await create(h, agent, name="Carla", email="carla@acme.example")
    theirs = await create(h, other.admin, name="Ana", email="x@acme.example")
    inbox = await h.make_api_inbox(other)
    await inbound(h, inbox, "o-1", name="Ana", email="ana@gmail.com", phone="+4915123456789")
    await h.run_jobs()
    assert await queue(h, agent) == []
    # In the other account the typed copy matches nothing of ours, only what is there.
    assert pairs(await queue(h, other.admin)) == []
    assert theirs["merged_into_id"] is None


async def test_job_is_enqueued_cheaply_and_is_idempotent(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    ana = await create(h, agent, name="Ana", phone="+4915123456789")
    assert len(await suggest_jobs(h, ctx)) == 1
    # A handle alone gives matching nothing to work with: no job on intake.
    await inbound(h, inbox, "anon-1", name="Anon")
    assert len(await suggest_jobs(h, ctx)) == 1
    web = (await inbound(h, inbox, "web-1", name="A", phone="+4915123456789"))["contact_id"]
    await inbound(h, inbox, "web-1", name="A", phone="+4915123456789")  # known sender: not created, no job
    assert len(await suggest_jobs(h, ctx)) == 2
    # Changes that do not touch name, email, phone or organization do not enqueue.
    r = await h.client.patch(f"{CONTACTS}/{ana['id']}", headers=agent.headers, json={"custom_attributes": {"x": 1}})
    assert r.status_code == 200 and len(await suggest_jobs(h, ctx)) == 2
    await h.run_jobs()
    (first,) = await queue(h, agent)

    # Running again (a renamed contact, a retried job) keeps one row per pair, same id.
    r = await h.client.patch(f"{CONTACTS}/{ana['id']}", headers=agent.headers, json={"name": "Ana Lima"})
    assert len(await suggest_jobs(h, ctx)) == 3
    async with h.runtime.uow() as uow:
        await actions.do_suggest_merges(uow, web)
    await h.run_jobs()
    assert [(s["id"], s["score"], s["reasons"]) for s in await queue(h, agent)] == [
        (first["id"], first["score"], first["reasons"])]

    # A dismissed suggestion stays dismissed whatever runs again.
    r = await h.client.post(f"{QUEUE}/{first['id']}/dismiss", headers=agent.headers)
    assert (r.status_code, r.json()["status"], r.json()["decided_by_user_id"]) == (200, "dismissed", agent.user_id)
    r = await h.client.post(f"{QUEUE}/{first['id']}/dismiss", headers=agent.headers)
    assert (r.status_code, r.json()["detail"]) == (409, "this suggestion was already dismissed")
    for contact_id in (web, ana["id"]):
        async with h.runtime.uow() as uow:
            await actions.do_suggest_merges(uow, contact_id)
    assert await queue(h, agent) == []
    (row,) = await queue(h, agent, status="dismissed")
    assert row["id"] == first["id"]

    # An open suggestion whose evidence is gone is withdrawn.
    bea = await create(h, agent, name="Bea", phone="+14155552671")
    bee = (await inbound(h, inbox, "web-2", name="B", phone="+14155552671"))["contact_id"]
    await h.run_jobs()
    assert [(s["contact"]["id"], s["candidate"]["id"]) for s in await queue(h, agent)] == [(bee, bea["id"])]
    r = await h.client.patch(f"{CONTACTS}/{bea['id']}", headers=agent.headers, json={"phone": "+442079460958"})
    assert r.status_code == 200
    # Bea's old number is still a verified identity of hers: the evidence stands.
    await h.run_jobs()
    assert len(await queue(h, agent)) == 1
    async with h.runtime.uow() as uow:
        suggestion = await uow.session.get(ContactMergeSuggestion, (await queue(h, agent))[0]["id"])
        assert suggestion is not None
        suggestion.score = 0.51  # as if computed by an older rule
        await uow.commit()
    async with h.runtime.uow() as uow:
        await actions.do_suggest_merges(uow, bee)
    assert [s["score"] for s in await queue(h, agent)] == [0.8]


# --- merging and undoing ------------------------------------------------------------------------

async def test_accept_merges_and_undo_restores(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    trusted = await h.make_api_inbox(ctx, trust=True)
    org = (await h.client.post("/api/v1/organizations", headers=agent.headers, json={"name": "Globex"})).json()
    # The older contact: an agent typed a number with the wrong country code.
    s = await create(h, agent, email="ana@acme.example", phone="+43 151 23456789", custom_attributes={"plan": "pro"})
    conv_s = (await inbound(h, trusted, "s-1", name="", email="ana@acme.example"))["conversation_id"]
    # The newer one: the CRM's verified number, and a conversation of its own.
    m_in = await inbound(h, trusted, "m-1", name="Ana Lima", phone="+4915123456789")
    m, conv_m = m_in["contact_id"], m_in["conversation_id"]
    assert m != s["id"]
    r = await h.client.patch(f"{CONTACTS}/{m}", headers=agent.headers,
                             json={"organization_id": org["id"], "custom_attributes": {"plan": "free", "tier": "gold"}})
    assert r.status_code == 200, r.text
    await h.run_jobs()
    (suggestion,) = await queue(h, agent)
    assert (suggestion["contact"]["id"], suggestion["candidate"]["id"], suggestion["score"]) == (m, s["id"], 0.7)
    s_before, m_before = await fetch(h, agent, s["id"]), await fetch(h, agent, m)
    convs_before = {c: await conversation_ids(h, agent, c) for c in (s["id"], m)}
    assert convs_before == {s["id"]: [conv_s], m: [conv_m]}

    with h.capture_events() as events:
        r = await h.client.post(f"{QUEUE}/{suggestion['id']}/accept", headers=agent.headers, json={})
    assert r.status_code == 201, r.text
    merge = r.json()
    assert (merge["survivor_id"], merge["merged_id"], merge["actor_user_id"], merge["undone_at"]) == (
        s["id"], m, agent.user_id, None)
    assert merge["moved"] == {
        "identity_ids": [i["id"] for i in m_before["identities"]], "conversation_ids": [conv_m],
        "survivor_before": {"name": "", "organization_id": None},
        "survivor_filled": {"name": "Ana Lima", "organization_id": org["id"]},
        "attributes_added": {"tier": "gold"}, "dismissed_suggestion_ids": [], "note_ids": [], "revoked_sessions": 0}

    survivor, merged = await fetch(h, agent, s["id"]), await fetch(h, agent, m)
    assert profile(survivor) == ("Ana Lima", "ana@acme.example", "+4315123456789", org["id"],
                                 {"plan": "pro", "tier": "gold"}, None)
    assert identity_view(survivor) == identity_view(s_before) + identity_view(m_before)
    assert (merged["merged_into_id"], merged["identities"]) == (s["id"], [])
    assert await conversation_ids(h, agent, s["id"]) == sorted([conv_s, conv_m])
    assert await conversation_ids(h, agent, m) == []
    r = await h.client.get(CONTACTS, headers=agent.headers)
    assert [c["id"] for c in r.json()["items"]] == [s["id"]]  # the merged contact is not listed
    assert await activity_verbs(h, agent, conv_m) == [
        ("contact_merged", {"from_contact_id": m, "to_contact_id": s["id"], "merge_id": merge["id"]})]
    assert (await queue(h, agent, status="accepted"))[0]["id"] == suggestion["id"]
    audit = (await h.client.get("/api/v1/audit-log", headers=ctx.admin.headers)).json()["items"][0]
    assert (audit["action"], audit["actor_user_id"], audit["subject_type"], audit["subject_id"]) == (
        "contact.merged", agent.user_id, "contact", s["id"])
    assert audit["data"] == {"merge_id": merge["id"], "merged_id": m, "suggestion_id": suggestion["id"],
                             "identity_ids": merge["moved"]["identity_ids"], "conversation_ids": [conv_m]}
    # Events: both contacts, and the moved conversation for whoever sees it.
    assert [type(e) for e in events] == [ContactUpdated, ContactUpdated, ConversationUpdated]
    assert [(e.contact.id, e.contact.merged_into_id, e.audience) for e in events[:2]] == [
        (s["id"], None, STAFF), (m, s["id"], STAFF)]
    assert (events[2].conversation.id, events[2].conversation.contact.id, events[2].changed) == (
        conv_m, s["id"], ["contact"])
    assert events[2].audience == Audience(roles=("admin", "supervisor"), all_agents=True)

    # The merged contact's verified number now reaches the survivor.
    after = await inbound(h, trusted, "m-1", phone="+4915123456789", conversation_key="after-merge")
    assert after["contact_id"] == s["id"] and after["conversation_id"] not in (conv_s, conv_m)
    assert (await inbound(h, trusted, "new-source", phone="+4915123456789"))["contact_id"] == s["id"]
    s_between = await fetch(h, agent, s["id"])  # it learned the new source's handle

    with h.capture_events() as events:
        r = await h.client.post(f"/api/v1/contact-merges/{merge['id']}/undo", headers=agent.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["undone_by_user_id"], r.json()["undone_at"] is not None) == (agent.user_id, True)
    survivor, merged = await fetch(h, agent, s["id"]), await fetch(h, agent, m)
    assert profile(survivor) == profile(s_before)
    assert profile(merged) == profile(m_before)
    learned = [i for i in identity_view(s_between) if i[3] == "new-source"]
    assert identity_view(survivor) == identity_view(s_before) + learned
    assert identity_view(merged) == identity_view(m_before)
    # The conversation started after the merge stays with the survivor.
    assert await conversation_ids(h, agent, s["id"]) == sorted([conv_s, after["conversation_id"]])
    assert await conversation_ids(h, agent, m) == [conv_m]
    assert [v for v, _ in await activity_verbs(h, agent, conv_m)] == ["contact_merged", "contact_unmerged"]
    assert [c["id"] for c in (await h.client.get(CONTACTS, headers=agent.headers)).json()["items"]] == [m, s["id"]]
    assert (await queue(h, agent, status="dismissed"))[0]["id"] == suggestion["id"]
    audit = (await h.client.get("/api/v1/audit-log", headers=ctx.admin.headers)).json()["items"][0]
    assert (audit["action"], audit["subject_id"], audit["data"]["merge_id"]) == (
        "contact.merge_undone", s["id"], merge["id"])
    assert [type(e) for e in events] == [ContactUpdated, ContactUpdated, ConversationUpdated]
    assert (events[2].conversation.id, events[2].conversation.contact.id) == (conv_m, m)
    # Its identities route to it again.
    assert (await inbound(h, trusted, "m-1", phone="+4915123456789"))["contact_id"] == m

    r = await h.client.post(f"/api/v1/contact-merges/{merge['id']}/undo", headers=agent.headers)
    assert (r.status_code, r.headers["content-type"], r.json()["detail"]) == (
        409, "application/problem+json", f"merge {merge['id']} was already undone")
    r = await h.client.get(f"{CONTACTS}/{m}/merges", headers=agent.headers)
    assert [x["id"] for x in r.json()["items"]] == [merge["id"]]


async def test_customer_session_of_the_merged_contact_gains_nothing(h: Harness) -> None:
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    ana = await create(h, agent, name="Ana", email="ana@acme.example")
    r = await h.client.post("/api/v1/conversations", headers=agent.headers,
                            json={"inbox_id": inbox.id, "contact_id": ana["id"], "subject": "Ana's order"})
    assert r.status_code == 201, r.text
    ana_conv = r.json()["id"]
    # A visitor types Ana's address into the widget: anyone could.
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                            json={"name": "Visitor", "email": "ana@acme.example"})
    visitor, visitor_headers = r.json()["contact_id"], {"authorization": f"Bearer {r.json()['token']}"}
    r = await h.client.post("/api/v1/customer/conversations", headers=visitor_headers,
                            json={"subject": "Hi", "content": "Is my order there?"})
    assert r.status_code == 201, r.text
    visitor_conv = r.json()["id"]
    await h.run_jobs()
    (suggestion,) = await queue(h, agent)
    assert (suggestion["contact"]["id"], suggestion["candidate"]["id"], suggestion["score"]) == (
        visitor, ana["id"], 0.8)
    r = await h.client.post(f"{QUEUE}/{suggestion['id']}/accept", headers=agent.headers, json={})
    assert r.status_code == 201 and r.json()["survivor_id"] == ana["id"]
    assert await conversation_ids(h, agent, ana["id"]) == sorted([ana_conv, visitor_conv])

    # The visitor's session still belongs to the merged contact: it sees nothing of the survivor's.
    r = await h.client.get("/api/v1/customer/conversations", headers=visitor_headers)
    assert (r.status_code, r.json()) == (200, [])
    for cid in (ana_conv, visitor_conv):
        for url in (f"/api/v1/customer/conversations/{cid}", f"/api/v1/customer/conversations/{cid}/messages"):
            r = await h.client.get(url, headers=visitor_headers)
            assert r.status_code == 404, (url, r.text)


async def test_refusals(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    agent = await h.make_user(ctx, "agent")
    expert = await h.make_user(ctx, "expert", role=Role.expert)
    reader = await h.make_user(ctx, "reader", scopes=["contacts:read"])
    x, y, z = [await create(h, agent, name=n) for n in ("X", "Y", "Z")]
    theirs = await create(h, other.admin, name="Theirs")

    async def merge(who: Staff, into: int, other_id: int) -> Any:
        return await h.client.post(f"{CONTACTS}/{into}/merge", headers=who.headers,
                                   json={"other_contact_id": other_id})

    r = await merge(agent, x["id"], x["id"])
    assert (r.status_code, r.json()["detail"]) == (422, "a contact cannot be merged into itself")
    for into, other_id in ((x["id"], theirs["id"]), (theirs["id"], x["id"])):
        r = await merge(agent, into, other_id)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await merge(expert, x["id"], y["id"])
    assert (r.status_code, r.json()["detail"]) == (403, "requires the admin or supervisor or agent role")
    r = await merge(reader, x["id"], y["id"])
    assert (r.status_code, r.json()["detail"]) == (403, "this API token lacks the 'contacts:write' scope")
    assert (await fetch(h, agent, y["id"]))["merged_into_id"] is None
    r = await h.client.post(f"{CONTACTS}/{x['id']}/merge", headers=agent.headers, json={"other": y["id"]})
    assert r.status_code == 422

    r = await merge(ctx.admin, y["id"], x["id"])  # admins may merge too
    assert r.status_code == 201, r.text
    first = r.json()
    for into, other_id in ((z["id"], x["id"]), (x["id"], z["id"])):
        r = await merge(agent, into, other_id)
        assert (r.status_code, r.json()["detail"], r.json()["merged_into_id"]) == (
            409, f"contact {x['id']} was already merged into contact {y['id']}", y["id"])
    r = await h.client.patch(f"{CONTACTS}/{x['id']}", headers=agent.headers, json={"name": "Renamed"})
    assert r.status_code == 409
    # GET of a merged contact still works.
    assert (await fetch(h, agent, x["id"]))["merged_into_id"] == y["id"]

    # The survivor merged on into another: its own merge must be undone first.
    r = await merge(agent, z["id"], y["id"])
    assert r.status_code == 201
    second = r.json()
    r = await h.client.post(f"/api/v1/contact-merges/{first['id']}/undo", headers=agent.headers)
    assert (r.status_code, r.json()["detail"]) == (
        409, f"contact {y['id']}, this merge's survivor, was itself merged into contact {z['id']} since; "
             "undo that merge first")
    for who in (expert, reader):
        r = await h.client.post(f"/api/v1/contact-merges/{second['id']}/undo", headers=who.headers)
        assert r.status_code == 403
    r = await h.client.post(f"/api/v1/contact-merges/{second['id']}/undo", headers=other.admin.headers)
    assert r.status_code == 404
    for merge_id in (second["id"], first["id"]):
        r = await h.client.post(f"/api/v1/contact-merges/{merge_id}/undo", headers=agent.headers)
        assert r.status_code == 200, r.text
    assert [(await fetch(h, agent, c["id"]))["merged_into_id"] for c in (x, y, z)] == [None, None, None]
    # Both directions of a contact's history, newest first.
    r = await h.client.get(f"{CONTACTS}/{y['id']}/merges", headers=agent.headers)
    assert [m["id"] for m in r.json()["items"]] == [second["id"], first["id"]]
    for url in (f"{CONTACTS}/{y['id']}/merges", f"{CONTACTS}/{y['id']}/merge-suggestions"):
        assert (await h.client.get(url, headers=other.admin.headers)).status_code == 404
        assert (await h.client.get(url, headers=expert.headers)).status_code == 403


async def test_suggestion_accept_options_and_lists(h: Harness) -> None:
    ctx = await h.make_account()
    other = await h.make_account("Other")
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    older = await create(h, agent, name="Old", phone="+4915123456789", email="old@acme.example")
    strong = (await inbound(h, inbox, "w-1", name="S", phone="+4915123456789", email="old@acme.example"))["contact_id"]
    weak = (await inbound(h, inbox, "w-2", name="W", phone="+4315123456789"))["contact_id"]
    mid = (await inbound(h, inbox, "w-3", name="M", email="old@acme.example"))["contact_id"]
    await h.run_jobs()
    everything = await queue(h, agent)
    # Most confident first: two typed values (0.96 = 1 - 0.2 * 0.2) beat one; ties newest first.
    assert [s["score"] for s in everything] == [0.96, 0.8, 0.7, 0.7, 0.6]
    assert sorted(everything, key=lambda s: (-s["score"], -s["id"])) == everything
    assert {(s["contact"]["id"], s["candidate"]["id"], s["score"]) for s in everything} == {
        (strong, older["id"], 0.96), (mid, older["id"], 0.8), (weak, older["id"], 0.7), (weak, strong, 0.7),
        (mid, strong, 0.6)}
    assert everything[0]["candidate"] == {
        "id": older["id"], "name": "Old", "email": "old@acme.example", "phone": "+4915123456789",
        "organization_id": None, "created_at": older["created_at"], "merged_into_id": None}
    # Paging walks the same order.
    seen, cursor = [], None
    while True:
        r = await h.client.get(QUEUE, headers=agent.headers, params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        seen += [s["id"] for s in r.json()["items"]]
        if (cursor := r.json()["next_cursor"]) is None:
            break
    assert seen == [s["id"] for s in everything]
    for bad in ("abc", "WyJ4IiwxXQ"):  # not a cursor; ["x", 1]
        r = await h.client.get(QUEUE, headers=agent.headers, params={"cursor": bad})
        assert r.status_code == 400, r.text
    r = await h.client.get(f"{CONTACTS}/{weak}/merge-suggestions", headers=agent.headers)
    assert {(s["contact"]["id"], s["candidate"]["id"]) for s in r.json()["items"]} == {
        (s["contact"]["id"], s["candidate"]["id"]) for s in everything if weak in (s["contact"]["id"],
                                                                                    s["candidate"]["id"])}
    assert await queue(h, other.admin) == []
    r = await h.client.post(f"{QUEUE}/{everything[0]['id']}/accept", headers=other.admin.headers, json={})
    assert r.status_code == 404

    # The agent picks the newer contact as survivor; anything else is refused.
    top = everything[0]
    for body in (b"null", b"", b'{"survivor_id": "newer"}'):
        r = await h.client.post(f"{QUEUE}/{top['id']}/accept", content=body,
                                headers={**agent.headers, "content-type": "application/json"})
        assert r.status_code == 422, (body, r.text)
    r = await h.client.post(f"{QUEUE}/{top['id']}/accept", headers=agent.headers, json={"survivor_id": mid})
    assert (r.status_code, r.json()["detail"]) == (
        422, f"survivor_id must be one of the suggestion's contacts, {older['id']} or {strong}")
    r = await h.client.post(f"{QUEUE}/{top['id']}/accept", headers=agent.headers, json={"survivor_id": strong})
    assert r.status_code == 201, r.text
    merge = r.json()
    assert (merge["survivor_id"], merge["merged_id"]) == (strong, older["id"])
    r = await h.client.post(f"{QUEUE}/{top['id']}/accept", headers=agent.headers, json={})
    assert (r.status_code, r.json()["detail"]) == (409, "this suggestion was already accepted")
    # The merged contact's other open suggestions are closed, and come back with an undo.
    involving = {s["id"] for s in everything if older["id"] in (s["contact"]["id"], s["candidate"]["id"])}
    assert set(merge["moved"]["dismissed_suggestion_ids"]) == involving - {top["id"]}
    assert all(s["id"] not in involving for s in await queue(h, agent))
    r = await h.client.post(f"/api/v1/contact-merges/{merge['id']}/undo", headers=agent.headers)
    assert r.status_code == 200
    assert {s["id"] for s in await queue(h, agent)} == {s["id"] for s in everything} - {top["id"]}


async def test_undo_keeps_a_conversation_the_survivor_wrote_into_after_the_merge(h: Harness) -> None:
    """Bob merged into Alice by mistake; Alice then wrote into the conversation that came from Bob
    and an agent answered her there. Undoing must not show Alice's words to Bob."""
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    trusted = await h.make_api_inbox(ctx, trust=True)
    alice = await inbound(h, trusted, "alice", name="Alice", email="alice@example.org")
    bob = await inbound(h, trusted, "bob", name="Bob", email="bob@example.org")
    r = await h.client.post(f"{CONTACTS}/{alice['contact_id']}/merge", headers=agent.headers,
                            json={"other_contact_id": bob["contact_id"]})
    assert r.status_code == 201, r.text
    merge = r.json()
    # Alice writes into Bob's former conversation (by its key); an agent answers her there.
    mixed_key = "bobs-thread"
    async with h.runtime.uow() as uow:
        from swarmdesk.conversations.models import Conversation

        row = await uow.session.get(Conversation, bob["conversation_id"])
        row.external_key = mixed_key
        await uow.commit()
    r = await h.deliver(trusted, inbound_payload(source_id="alice", content="Alice again", conversation_key=mixed_key))
    assert r.status_code == 200 and r.json()["conversation_id"] == bob["conversation_id"], r.text
    r = await h.client.post(f"/api/v1/conversations/{bob['conversation_id']}/messages", headers=agent.headers,
                            json={"content": "Alice, your refund is on its way"})
    assert r.status_code == 201, r.text

    r = await h.client.post(f"/api/v1/contact-merges/{merge['id']}/undo", headers=agent.headers)
    assert r.status_code == 200, r.text
    assert bob["conversation_id"] in await conversation_ids(h, agent, alice["contact_id"])
    assert await conversation_ids(h, agent, bob["contact_id"]) == []
    audit = (await h.client.get("/api/v1/audit-log", headers=ctx.admin.headers)).json()["items"][0]
    assert audit["data"]["kept_with_survivor"] == [bob["conversation_id"]]


async def test_a_visitor_made_the_survivor_loses_its_session_and_sessions_see_only_their_inbox(h: Harness) -> None:
    """Defence in depth behind "the older profile survives": even when an agent picks the visitor's
    profile as the survivor of a merge with someone's verified identity, the visitor's widget session
    ends; and a widget or app session only ever sees conversations on its own inbox."""
    ctx = await h.make_account()
    agent = await h.make_user(ctx, "agent")
    inbox = await h.make_api_inbox(ctx)
    other_inbox = await h.make_api_inbox(ctx)
    ana = await create(h, agent, name="Ana", email="ana@acme.example")
    ana_convs = []
    for box in (inbox, other_inbox):
        r = await h.client.post("/api/v1/conversations", headers=agent.headers,
                                json={"inbox_id": box.id, "contact_id": ana["id"], "subject": f"Ana {box.id}"})
        assert r.status_code == 201, r.text
        ana_convs.append(r.json()["id"])
    r = await h.client.post(f"/api/v1/inboxes/{inbox.public_key}/customer-sessions",
                            json={"name": "Visitor", "email": "ana@acme.example"})
    visitor, visitor_headers = r.json()["contact_id"], {"authorization": f"Bearer {r.json()['token']}"}
    r = await h.client.post("/api/v1/customer/conversations", headers=visitor_headers,
                            json={"subject": "Hi", "content": "Is my order there?"})
    visitor_conv = r.json()["id"]
    await h.run_jobs()
    (suggestion,) = await queue(h, agent)
    r = await h.client.post(f"{QUEUE}/{suggestion['id']}/accept", headers=agent.headers, json={"survivor_id": visitor})
    assert r.status_code == 201 and r.json()["survivor_id"] == visitor
    assert r.json()["moved"]["revoked_sessions"] == 1
    r = await h.client.get("/api/v1/customer/conversations", headers=visitor_headers)
    assert r.status_code == 401
    assert await conversation_ids(h, agent, visitor) == sorted([*ana_convs, visitor_conv])

    # A new session of the (now merged) profile on one inbox sees that inbox's conversations only.
    async with h.runtime.uow() as uow:
        token = await _session_for(uow, ctx.account_id, visitor, inbox.id)
    headers = {"authorization": f"Bearer {token}"}
    r = await h.client.get("/api/v1/customer/conversations", headers=headers)
    assert sorted(c["id"] for c in r.json()) == sorted([ana_convs[0], visitor_conv])
    r = await h.client.get(f"/api/v1/customer/conversations/{ana_convs[1]}", headers=headers)
    assert r.status_code == 404


async def _session_for(uow, account_id: int, contact_id: int, inbox_id: int) -> str:  # noqa: ANN001
    token = new_token(CUSTOMER_TOKEN_PREFIX)
    uow.session.add(CustomerSession(account_id=account_id, contact_id=contact_id, inbox_id=inbox_id,
                                    token_hash=token_digest(token), created_at=utcnow(),
                                    expires_at=utcnow() + timedelta(days=1)))
    await uow.session.commit()
    return token
