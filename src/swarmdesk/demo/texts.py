"""The demo's vocabulary: the company, its people and customers, and support dialogue templates.

Templates use ``str.format_map`` placeholders that ``story`` fills in for each conversation:
{first} (the customer's first name), {agent}, {order}, {amount}, {product}, {carrier}, {tracking},
{date}, {device}, {app_version}, {error}, {last4}, {company}, {qty}, {city}, {code}, {days}, {team}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ACCOUNT_NAME = "Northwind Outfitters"
STAFF_DOMAIN = "northwind.example"

# (key, name, role, team names). The first of each role is the login the CLI prints.
STAFF: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("sam.rivera", "Sam Rivera", "supervisor", ("Orders", "Billing")),
    ("jordan.okafor", "Jordan Okafor", "supervisor", ("Technical", "VIP")),
    ("maya.chen", "Maya Chen", "agent", ("Orders", "VIP")),
    ("luis.fernandez", "Luis Fernández", "agent", ("Orders",)),
    ("hannah.weber", "Hannah Weber", "agent", ("Orders",)),
    ("tom.becker", "Tom Becker", "agent", ("Orders",)),
    ("aisha.bello", "Aisha Bello", "agent", ("Billing", "VIP")),
    ("noah.kim", "Noah Kim", "agent", ("Billing",)),
    ("emma.lindqvist", "Emma Lindqvist", "agent", ("Billing",)),
    ("ravi.shah", "Ravi Shah", "agent", ("Technical",)),
    ("olivia.brooks", "Olivia Brooks", "agent", ("Technical",)),
    ("kenji.sato", "Kenji Sato", "agent", ("Technical",)),
    ("chloe.martin", "Chloé Martin", "agent", ("Technical", "VIP")),
    ("daniel.novak", "Daniel Novák", "agent", ("VIP",)),
    # Engineering, pulled into technical cases as the expert in a swarm.
    ("priya.natarajan", "Priya Natarajan", "expert", ()),
)
ADMIN = ("alex.morgan", "Alex Morgan")

TEAMS: tuple[tuple[str, str], ...] = (
    ("Billing", "Charges, refunds, invoices, memberships and promo codes"),
    ("Technical", "Sign-in, the mobile app, the web shop and partner integrations"),
    ("Orders", "Order status, shipping, damaged items, returns and exchanges"),
    ("VIP", "Enterprise partners and Summit-tier members"),
)

# Where customers write from. Only the "api" channel kind exists so far, so each source is an API
# inbox named for the system that posts to it: in-app help in the iOS and Android apps, the web
# shop's contact form and order pages, retail partners' portal, and the help center's "still need
# help?" form. Email, chat and SMS inboxes arrive with the channels issue.
INBOXES: tuple[str, ...] = ("Mobile app", "Web shop", "Partner portal", "Help center")

FIRST_NAMES = (
    "Ana", "Ben", "Carla", "David", "Elif", "Farah", "George", "Hiro", "Ines", "Jamal", "Kara", "Liam",
    "Mina", "Nils", "Omar", "Paula", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Xin",
    "Yara", "Zoe", "Amir", "Bianca", "Chidi", "Dana", "Erik", "Fatima", "Gabriel", "Hana", "Ivan", "Julia",
    "Kofi", "Lena", "Marco", "Nadia", "Oscar", "Priya", "Rafael", "Sofia", "Theo", "Uma", "Victor", "Wanda",
    "Yusuf", "Zainab", "Alice", "Bruno", "Clara", "Diego", "Eva", "Felix", "Grace", "Henrik", "Isla", "Jonas",
)
LAST_NAMES = (
    "Lima", "Schmidt", "Okoye", "Novak", "Yilmaz", "Haddad", "Brown", "Tanaka", "Costa", "Walker", "Nguyen",
    "Murphy", "Kowalski", "Andersen", "Rahman", "García", "Fischer", "Rossi", "Larsen", "Patel", "Dubois",
    "Moreau", "Silva", "Jensen", "Mensah", "Ivanova", "Kaplan", "Osei", "Romero", "Bauer", "Hughes", "Ali",
    "Petrov", "Santos", "Klein", "Hoffmann", "Berg", "Lopez", "Adeyemi", "Wright", "Ferrari", "Svensson",
    "Kim", "Park", "Chen", "Morales", "Farouk", "O'Brien", "Weiss", "Sato", "Mäkinen", "Nowak",
)
# Made-up mailbox providers under the reserved .example top-level domain.
MAIL_DOMAINS = ("mail.example", "inbox.example", "post.example", "webmail.example", "fastmail.example")

# (name, domain, plan). Enterprise partners are routed to the VIP team.
ORGANIZATIONS: tuple[tuple[str, str, str], ...] = (
    ("Alpine Trail Co.", "alpinetrail.example", "enterprise"),
    ("Harbor Outdoor Supply", "harboroutdoor.example", "enterprise"),
    ("Summit & Sons", "summitsons.example", "enterprise"),
    ("Evergreen Adventure Stores", "evergreen-adventure.example", "enterprise"),
    ("Bluewater Kayak Center", "bluewater.example", "enterprise"),
    ("Redrock Expeditions", "redrock.example", "enterprise"),
    ("Northern Lights Sports", "nlsports.example", "business"),
    ("Pine Ridge Camping", "pineridge.example", "business"),
    ("Coastal Climbing Gym", "coastalclimb.example", "business"),
    ("Trailblazer Scouts Association", "trailblazers.example", "business"),
    ("Granite Peak Guides", "granitepeak.example", "business"),
    ("Meadowbrook Outfitters", "meadowbrook.example", "business"),
    ("Lakeside Rental Shack", "lakeside.example", "business"),
    ("Urban Hikers Club", "urbanhikers.example", "business"),
    ("Wildflower School Camps", "wildflower.example", "business"),
    ("Fjord & Forest", "fjordforest.example", "business"),
    ("Desert Bloom Tours", "desertbloom.example", "business"),
    ("Cedar Valley Ski School", "cedarvalley.example", "business"),
    ("Blackbird Cycling", "blackbird.example", "business"),
    ("Riverbend Fly Fishing", "riverbend.example", "business"),
    ("Highline Events", "highline.example", "business"),
    ("Snowcap Rentals", "snowcap.example", "business"),
    ("Open Sky Travel", "opensky.example", "business"),
    ("Timberline Lodge Shop", "timberline.example", "business"),
)

CITIES = ("Portland", "Denver", "Hamburg", "Lyon", "Leeds", "Toronto", "Austin", "Utrecht", "Oslo", "Porto",
          "Seattle", "Munich", "Dublin", "Gothenburg", "Boise", "Melbourne")
PRODUCTS = ("Summit 2P tent", "Ridgeline rain jacket", "Trailhead 40L backpack", "Granite hiking boots",
            "Featherlite sleeping bag", "Basecamp stove", "Cascade water filter", "Nomad headlamp",
            "Tundra down parka", "Canyon trekking poles", "Drift merino base layer", "Horizon camp chair")
CARRIERS = ("UPS", "DHL", "FedEx", "USPS", "DPD", "GLS")
DEVICES = ("iPhone 15", "iPhone 13 mini", "Pixel 8", "Galaxy S23", "Galaxy A54", "iPad Air", "OnePlus 11")
ERRORS = ("ERR_PAYMENT_DECLINED", "500 Internal Server Error", "CART_SYNC_FAILED", "token_expired",
          "ADDRESS_VALIDATION_TIMEOUT", "E-4012")
LOYALTY_TIERS = ("Basecamp", "Basecamp", "Basecamp", "Trail", "Trail", "Summit")
LANGUAGES = ("en", "en", "en", "en", "de", "fr", "es", "nl", "sv")


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    team: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]  # inbox names this kind of request comes through
    weight: int
    subjects: tuple[str, ...]
    openers: tuple[str, ...]  # the customer's first message
    details: tuple[str, ...]  # a second customer message right after the first
    replies: tuple[str, ...]  # the agent's first answer
    followups: tuple[str, ...]  # the customer writes again
    updates: tuple[str, ...]  # the agent's later answers
    asks: tuple[str, ...]  # the agent needs something from the customer (ends "pending")
    resolutions: tuple[str, ...]  # the agent's last message before resolving
    notes: tuple[str, ...]  # internal notes between staff


APP, WEB, PARTNER, HELP = INBOXES
# Each inbox is a real channel: the apps post through the API channel, the shop has the chat
# widget, the help center is the support mailbox.
INBOX_KINDS: dict[str, str] = {APP: "api", WEB: "webchat", PARTNER: "api", HELP: "email"}
INBOX_CONFIGS: dict[str, dict[str, Any]] = {HELP: {"address": f"help@{STAFF_DOMAIN}",
                                                    "display_name": "Northwind Help Center"}}

TOPICS: tuple[Topic, ...] = (
    Topic(
        "where_is_my_order", "Orders", ("order-status", "shipping"), (WEB, APP, HELP, PARTNER), 16,
        ("Where is my order {order}?", "Order {order} not delivered yet", "Tracking hasn't updated"),
        ("Hi, I ordered the {product} on {date} (order {order}) and it still hasn't arrived. The tracking "
         "number {tracking} hasn't moved in {days} days. Can you check what's going on?",
         "Hello! My order {order} was supposed to arrive yesterday but nothing came. Is it lost?",
         "Hi there, tracking for {order} says 'label created' since {date}. I need the {product} for a trip "
         "this weekend, can you help?"),
        ("The carrier is {carrier} if that helps.", "I'm in {city}, in case it matters for the delivery route."),
        ("Hi {first}, thanks for reaching out. I checked order {order}: it left our warehouse on {date} with "
         "{carrier} ({tracking}). The scan gap looks like a hub delay; I've opened a trace with them.",
         "Hi {first}, sorry about the wait! {carrier} shows your parcel at their {city} depot. It should be out "
         "for delivery within 1-2 business days.",
         "Hello {first}, I can see the order was split into two parcels. The {product} shipped separately with "
         "tracking {tracking}; the rest follows tomorrow."),
        ("Still nothing today. Should I just order again?", "The tracking now says 'exception'. What does "
         "that mean?", "Thanks. Any news from {carrier}?"),
        ("{carrier} confirmed the parcel was mis-sorted and is back on its way; new estimate is {date}.",
         "I've asked {carrier} to prioritise the delivery and added a note for the driver.",
         "Quick update: the trace is still open. I'll keep an eye on it and write as soon as I hear back."),
        ("Could you confirm the delivery address on the order is still correct, including the apartment "
         "number?", "Would you prefer a replacement shipped by express, or a refund of {amount}?"),
        ("Good news: {carrier} shows order {order} as delivered this morning. Enjoy your {product}, {first}!",
         "I've shipped a replacement {product} by express at no cost (tracking {tracking}). The original "
         "parcel will be returned to us when it turns up.",
         "Your refund of {amount} for order {order} is on its way; it takes 3-5 business days to show up."),
        ("Trace opened with {carrier}, ref {code}. Check again in 48h.", "Second late parcel for this "
         "customer this quarter. Offering free express on the replacement.", "Depot in {city} has a backlog "
         "this week, several orders affected."),
    ),
    Topic(
        "damaged_item", "Orders", ("damaged", "returns"), (WEB, APP, HELP), 8,
        ("Item arrived damaged", "Broken {product}", "Damaged parcel for order {order}"),
        ("My {product} arrived today with a torn seam and the box was crushed. Order {order}. I'd like a "
         "replacement please.", "Hi, the {product} I received is broken: one of the poles is snapped. Not "
         "great since I leave on {date}.", "The zipper on my new {product} came off the first time I used it."),
        ("I've attached photos of the box and the item.", "The outer box looked fine, so it must have been "
         "packed like that."),
        ("I'm so sorry, {first}! Thanks for the photos. I can send a replacement {product} right away; you "
         "don't need to return the damaged one.", "Hi {first}, that's not the quality we want you to get. I've "
         "started a replacement for order {order} and emailed you a prepaid return label."),
        ("Thanks! Will the replacement arrive before {date}?", "Do I need to keep the original packaging?"),
        ("The replacement is packed and leaves today with {carrier}, tracking {tracking}.", "I've upgraded the "
         "replacement to express so it arrives before {date}."),
        ("Could you send one more photo showing the product label with the batch number?", "Can you confirm "
         "your size so we send the right one?"),
        ("The replacement {product} has been delivered according to {carrier}. I'm closing this one, but reply "
         "any time if something's not right.", "All done: replacement shipped and the return label is no "
         "longer needed. Happy trails, {first}!"),
        ("Third report of snapped poles from batch {code}. Flagged to QA.", "Packing station 4 again; told the "
         "warehouse lead."),
    ),
    Topic(
        "return_exchange", "Orders", ("returns", "exchange"), (WEB, APP, HELP), 9,
        ("Exchange for a different size", "Return request for order {order}", "How do I return the {product}?"),
        ("Hi, the {product} from order {order} is too small. Can I exchange it for one size up?", "I'd like to "
         "return the {product}, it's not what I expected. How does that work?", "Hello, can I still return an "
         "item I bought on {date}? It's unused with tags."),
        ("I bought it in the app if that matters.", "I still have the original box."),
        ("Hi {first}, of course! I've created an exchange for order {order} and sent a prepaid label to your "
         "email. The new size ships as soon as the parcel is scanned.", "Hi {first}, returns are free within 60 "
         "days. I've generated a label for you; drop the parcel at any {carrier} point."),
        ("Got the label, thanks. How long does the refund take?", "I dropped it off today."),
        ("We've received your return at the warehouse; the refund of {amount} has been issued.", "The exchange "
         "item left the warehouse today with tracking {tracking}."),
        ("Which size would you like instead?", "Could you tell me the reason for the return? It helps our "
         "product team."),
        ("Your refund of {amount} is complete. Thanks for shopping with us, {first}!", "Exchange delivered "
         "according to {carrier}. Hope the new size fits perfectly!"),
        ("Outside the 60 days by a week, approving as a goodwill gesture.", "Customer has 4 returns in 3 "
         "months; fine for now, keep an eye on it."),
    ),
    Topic(
        "address_change", "Orders", ("address-change",), (WEB, APP), 4,
        ("Change delivery address", "Wrong address on order {order}"),
        ("I just placed order {order} and realised it's going to my old address. Can you change it to my new "
         "place in {city}?", "Can I change the delivery address on {order}? I'll be away that week."),
        ("It hasn't shipped yet as far as I can tell.",),
        ("Hi {first}, I caught it in time: the order hasn't been packed yet, so I've updated the address.",
         "Hi {first}, the parcel has already shipped, but I've asked {carrier} to redirect it."),
        ("Great, thank you!", "Will that delay the delivery?"),
        ("{carrier} accepted the redirect; expect one extra day.",),
        ("Could you send me the full new address, including the postcode?",),
        ("Address updated and confirmed with the warehouse. You're all set, {first}.",),
        ("Redirect fee waived.", "Address change done in the WMS before pick."),
    ),
    Topic(
        "refund_status", "Billing", ("refund",), (WEB, APP, HELP), 9,
        ("Refund not received", "Where is my refund?", "Refund for order {order}"),
        ("I returned the {product} two weeks ago and still haven't received my refund of {amount}.",
         "Hi, you confirmed my return on {date} but the money isn't back on my card ending {last4}.",
         "How long do refunds take? Order {order}."),
        ("I paid by card, if that matters.",),
        ("Hi {first}, I can see the refund of {amount} was issued on {date}. Banks usually take 3-5 business "
         "days to show it.", "Hi {first}, sorry for the wait. The return was received but the refund got stuck "
         "in review; I've pushed it through now."),
        ("It's been 7 days now and still nothing.", "My bank says they don't see anything incoming."),
        ("I've attached the refund reference {code}; your bank can trace it with that.", "I checked with our "
         "payments team: the refund was accepted by the card network on {date}."),
        ("Could you check whether the card ending {last4} is still active?",),
        ("The refund of {amount} has settled on our side (reference {code}). Let me know if your bank has any "
         "questions.", "Refund of {amount} completed. Sorry again for the delay, {first}."),
        ("Refund stuck in manual review since {date}. Released it.", "Payment provider shows settled, nothing "
         "more we can do on our side."),
    ),
    Topic(
        "double_charge", "Billing", ("billing", "double-charge"), (WEB, APP), 6,
        ("Charged twice for order {order}", "Double charge on my card"),
        ("I was charged {amount} twice for order {order}. Please refund the duplicate!", "My statement shows "
         "two payments of {amount} to Northwind on {date}. I only placed one order."),
        ("Here's a screenshot of my banking app.", "Card ending {last4}."),
        ("Hi {first}, you're right: the payment was captured twice after a timeout at checkout. I'm refunding "
         "the duplicate now.", "Hi {first}, thanks for flagging. The second charge is a pre-authorisation that "
         "should drop off within 7 days, but I've asked our payment provider to release it now."),
        ("OK, thanks. When will I see it?", "It's still showing as pending."),
        ("The duplicate {amount} was refunded today, reference {code}.",),
        ("Could you confirm the last four digits of the card you used?",),
        ("The duplicate charge of {amount} is refunded. Sorry for the trouble, {first}!",),
        ("Checkout retried capture after gateway timeout. @Technical this is the {error} bug again.",
         "Refunded duplicate via provider dashboard."),
    ),
    Topic(
        "invoice_request", "Billing", ("invoice",), (PARTNER, WEB), 4,
        ("Invoice with VAT number", "Need an invoice for order {order}"),
        ("Could you send an invoice for order {order} with our company details and VAT number? We're {company}.",
         "Our accounting needs the invoices for {date} to {date} as PDF."),
        ("Billing address is our office in {city}.",),
        ("Hi {first}, I've regenerated the invoice for {order} with {company}'s details and attached it.",
         "Hi {first}, the invoices are available under Billing in the partner portal; I've also emailed them."),
        ("Thanks. Could you add our PO number {code}?",),
        ("Updated invoice with PO {code} attached.",),
        ("What's the VAT number we should print on it?",),
        ("Corrected invoice sent. Let me know if accounting needs anything else.",),
        ("Partner asks for PO on every invoice; added to their account notes.",),
    ),
    Topic(
        "membership_cancel", "Billing", ("membership", "cancellation"), (APP, WEB, HELP), 5,
        ("Cancel my Northwind Plus membership", "Membership renewed without notice"),
        ("Please cancel my Northwind Plus membership. I was charged {amount} on {date} and I didn't want it to "
         "renew.", "How do I cancel Plus? I can't find the button in the app."),
        ("I haven't used any Plus benefits since it renewed.",),
        ("Hi {first}, I've cancelled your Plus membership. Since you haven't used it since the renewal, I've "
         "refunded the {amount} as well.", "Hi {first}, you can cancel under Profile > Membership, but I've "
         "done it for you now."),
        ("Thanks. Will I lose my points?",),
        ("Your points stay on your account for 12 months after cancelling.",),
        ("Would you like me to cancel right away or at the end of the current period?",),
        ("Cancellation confirmed and refund of {amount} issued. You can rejoin any time.",),
        ("Renewal reminder email bounced for this customer; that's why they missed it.",),
    ),
    Topic(
        "promo_code", "Billing", ("promo-code",), (WEB, APP), 4,
        ("Promo code not working", "Discount not applied"),
        ("The code {code} from your newsletter says 'invalid' at checkout.", "I forgot to apply my discount "
         "code on order {order}. Can you still apply it?"),
        ("It's the 15% off one.",),
        ("Hi {first}, that code excludes sale items, which is why it didn't apply. I've added a one-off 15% "
         "credit to your account instead.", "Hi {first}, no problem: I've refunded the discount difference "
         "of {amount} to your card."),
        ("Perfect, thanks!",),
        ("The credit is visible in your account under Wallet.",),
        ("Which order would you like the discount applied to?",),
        ("Done: {amount} refunded as the discount. Enjoy!",),
        ("Newsletter code {code} was set to exclude sale items by mistake. Marketing fixing.",),
    ),
    Topic(
        "login_problem", "Technical", ("login", "account"), (APP, WEB, HELP), 8,
        ("Can't log in", "Password reset email never arrives", "Locked out of my account"),
        ("I can't log in to the app; it keeps saying my password is wrong even after resetting it.",
         "The password reset email never arrives. I've checked spam.", "My account is locked after too many "
         "attempts. Can you unlock it?"),
        ("I'm using a {device}, app version {app_version}.", "I signed up with my Google account originally, "
         "not sure if that matters."),
        ("Hi {first}, I've unlocked your account and sent a fresh reset link; it's valid for one hour.",
         "Hi {first}, your account was created with Google sign-in, so there's no password to reset. Use "
         "'Continue with Google' on the login screen.", "Hi {first}, our email provider had delays this "
         "morning. I've re-sent the reset email just now."),
        ("Still not working, same error.", "Got it, but the link says it's expired."),
        ("I've cleared the old sessions on your account; please try once more with the new link.",
         "Our engineers found the cause: reset links opened in the in-app browser were rejected. A fix is "
         "going out in {app_version}."),
        ("Could you tell me which email address you see on the login screen?", "Can you send a screenshot of "
         "the error message?"),
        ("Glad you're back in, {first}! Closing this, but just reply if it happens again.", "The fix is live "
         "and your login works again. Thanks for your patience!"),
        ("Seen this {error} with three accounts today, all on {device}.", "Account was locked by the "
         "brute-force guard, not suspicious: same IP as usual."),
    ),
    Topic(
        "app_crash", "Technical", ("bug", "mobile-app"), (APP,), 7,
        ("App crashes on startup", "App freezes at checkout", "Wishlist disappeared"),
        ("Since the last update the app crashes as soon as I open it. {device}, version {app_version}.",
         "The app freezes when I tap 'Pay' and I have to force-close it.", "All the items on my wishlist are "
         "gone after the update!"),
        ("Reinstalling didn't help.", "It worked fine last week."),
        ("Hi {first}, thanks for the details. We've reproduced a crash on {device} with {app_version} and the "
         "team is on it.", "Hi {first}, sorry about that. Could you try logging out and in again? That "
         "re-syncs your wishlist from the server."),
        ("Any update? Still crashing.", "Logging out didn't bring my wishlist back."),
        ("A fix is in review with the app store and should be out within two days.", "We restored your "
         "wishlist from yesterday's backup; it should appear after a refresh."),
        ("Could you send the crash report from Settings > Help > Send diagnostics?", "Which version of the app "
         "do you see under Settings > About?"),
        ("Version {app_version} with the fix is now in the store. Please update and let us know if you still "
         "see the crash.", "Your wishlist is back. Sorry for the scare, {first}!"),
        ("@Priya crash log attached, NullPointer in CartSync on {device}.", "Linked to bug {code}; 41 reports "
         "so far.", "Workaround: clear app cache. Fix ships in {app_version}."),
    ),
    Topic(
        "checkout_error", "Technical", ("bug", "checkout"), (WEB, HELP), 6,
        ("Error at checkout", "Payment keeps failing", "Can't complete my order"),
        ("I get '{error}' every time I try to pay. I've tried two different cards.", "Checkout hangs on the "
         "address step and then shows an error.", "The website won't let me complete my order; it says "
         "'{error}'."),
        ("I'm on Firefox on a laptop.", "My cart has the {product} and a {product} in it."),
        ("Hi {first}, thanks for reporting. We're seeing {error} for some customers since this morning and "
         "are working on it.", "Hi {first}, that error comes from address validation timing out. Could you "
         "try again now? We restarted the service."),
        ("Still the same error.", "It worked, but I was charged twice?"),
        ("Our engineers deployed a fix at {date}; checkout should work again.", "The failed attempts were "
         "only authorisations and will drop off your card automatically."),
        ("Could you tell me the time you last tried, so I can find it in our logs?",),
        ("Checkout works again and your order {order} went through. Sorry for the hassle, {first}!",),
        ("Incident {code}: payment gateway timeouts, status page updated.", "@Priya logs show {error} from "
         "the address service for postcodes in {city}."),
    ),
    Topic(
        "data_deletion", "Technical", ("privacy", "gdpr"), (WEB, HELP, APP), 2,
        ("Delete my account and data", "Data export request"),
        ("Please delete my account and all personal data you hold about me.", "I'd like a copy of all data "
         "you have about me, as per GDPR."),
        ("My account email is the one I'm writing from.",),
        ("Hi {first}, I've started the deletion. It completes within 30 days; open orders are kept as "
         "required for accounting.", "Hi {first}, we've started your data export; you'll get a download link "
         "by email within 7 days."),
        ("Thanks, please confirm when it's done.",),
        ("The export is ready; the link was sent to your email and is valid for 14 days.",),
        ("To protect your account, could you confirm the postcode of your last delivery?",),
        ("Your account and personal data have been deleted. Thanks for having been a Northwind customer.",),
        ("Identity verified via last delivery postcode.", "Deletion job {code} queued."),
    ),
    Topic(
        "bulk_order", "Orders", ("wholesale", "bulk-order"), (PARTNER,), 7,
        ("Bulk order for {qty} units", "Restock before the season", "Lead time for a large order"),
        ("We'd like to order {qty} units of the {product} for our {city} store. Can you confirm stock and "
         "lead time? — {company}", "Our spring restock PO {code} is ready: {qty} × {product}. When can it "
         "ship?", "Is there a volume discount on {qty} {product}s?"),
        ("We'd need delivery before {date}.", "Please ship to our warehouse, not the store."),
        ("Hi {first}, thanks for the order. We have {qty} in stock at the main warehouse and can ship within "
         "5 business days.", "Hi {first}, for {qty} units your partner tier gets 12% off; I've attached an "
         "updated quote."),
        ("Great. Can you split it across two deliveries?", "Any chance to ship sooner?"),
        ("The first pallet left today; the second follows on {date}.", "I've confirmed with the warehouse: "
         "we can ship on {date}."),
        ("Could you confirm the delivery window and whether the warehouse has a loading dock?",),
        ("PO {code} is fully delivered. Thanks for your business, {first}!",),
        ("Stock for {product} is low at the EU warehouse; allocating from US.", "Approved 12% partner "
         "discount for {company}."),
    ),
    Topic(
        "partner_api", "Technical", ("partner-api", "integration"), (PARTNER,), 3,
        ("Inventory feed returns errors", "API token expired", "Webhook deliveries failing"),
        ("Our inventory sync with your partner API has been failing since {date} with '{error}'.",
         "Our order webhook endpoint hasn't received anything from you since yesterday. — {company}"),
        ("Nothing changed on our side.",),
        ("Hi {first}, your API token expired on {date}. I've issued a new one in the partner portal.",
         "Hi {first}, we see your endpoint answering 500 since yesterday, so deliveries are being retried."),
        ("New token works, thanks. Can tokens last longer?", "Our endpoint is fixed now."),
        ("The backlog of webhook deliveries has been replayed.",),
        ("Could you share the request id from one of the failed calls?",),
        ("Everything is flowing again. Thanks for working through it with us.",),
        ("@Priya partner seeing {error} from the inventory feed.", "Token expiry now 12 months for partners."),
    ),
    Topic(
        "product_question", "Orders", ("pre-sales",), (WEB, APP, HELP), 6,
        ("Question about the {product}", "Which size should I get?", "Is the {product} waterproof?"),
        ("Is the {product} suitable for winter camping around -10°C?", "I'm between two sizes for the "
         "{product}. I usually wear a 42. Which should I choose?", "Is the {product} back in stock soon?"),
        ("It's for a trip to the mountains on {date}.",),
        ("Hi {first}, great question! The {product} is rated for three seasons; for -10°C I'd recommend the "
         "Tundra down parka as well.", "Hi {first}, the {product} runs small; most customers go one size up."),
        ("Thanks! Does it come with a warranty?",),
        ("Yes, every Northwind product has a 2-year warranty, and the {product} 5 years.",),
        ("What kind of trips are you planning, so I can suggest the right model?",),
        ("Hope that helps, {first}. Have a great trip!",),
        ("Restock for {product} expected {date}.",),
    ),
)

# Customer messages that fit any topic.
NUDGES = (
    "Any update on this?", "Hello? It's been two days and I haven't heard back.", "Just checking in on this.",
    "Is anyone looking at this? I really need an answer.",
)
# The agent puts a case on hold (the conversation ends up snoozed).
HOLDS = (
    "I've escalated this to our {team} specialists; they usually answer within 48 hours. I'll get back to you "
    "as soon as I hear from them.",
    "I'm waiting for confirmation from our warehouse and will update you by {date}.",
    "Thanks for your patience, {first}. I've set a reminder to follow up with you on {date}.",
)
THANKS = ("Thanks a lot!", "Perfect, thank you {agent}!", "Great, that solved it.", "Thank you for the quick help!")
SUPERVISOR_NOTES = (
    "Customer is a long-time Summit member, please prioritise.", "Approved the goodwill credit.",
    "Second contact about this. Let's make sure it's solved this time.", "Reassigning to balance the queue.",
)
# The expert's internal notes when pulled into a case.
EXPERT_NOTES = (
    "Looked at the logs: it's the {error} path. We have a fix in review; tell the customer 1-2 days.",
    "Reproduced on {device} with {app_version}. Workaround: log out and back in. Fix is tracked as {code}.",
    "Not a bug on our side: their token expired on {date}. A new one from the portal fixes it.",
    "Root cause found (cache key collision after the deploy). Cleared it for this account; should work now.",
)
# A customer writes again after the case was resolved (it reopens).
REOPENERS = (
    "Sorry to come back to this, but it's happening again.", "Actually, the problem is back since this morning.",
    "Hi again, it worked for a day and now it's the same as before.",
)
