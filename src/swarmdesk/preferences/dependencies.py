"""Access gates of the preferences domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from swarmdesk.auth.dependencies import Customer, is_portal_customer
from swarmdesk.auth.principals import CustomerPrincipal
from swarmdesk.core.errors import Forbidden


async def rules_customer(customer: Customer) -> CustomerPrincipal:
    """Contact rules are account-wide (every channel, every conversation), so only a customer portal
    session may read or change them: it was opened by a link mailed to a verified address of the
    contact. A chat widget or API session is bound to one inbox and may be an anonymous visitor, or
    one who typed someone else's address; it must not silence (or unsilence) a person everywhere."""
    if not is_portal_customer(customer):
        raise Forbidden("contact preferences can only be read and changed in the customer portal (sign in with "
                        "the link we mail you); a chat or app session cannot change them")
    return customer


RulesCustomer = Annotated[CustomerPrincipal, Depends(rules_customer)]
