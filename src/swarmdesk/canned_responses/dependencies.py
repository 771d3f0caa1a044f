"""Access gates: every staff member reads canned responses; admins and supervisors write them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from swarmdesk.accounts.models import Role
from swarmdesk.auth.dependencies import scoped
from swarmdesk.auth.principals import StaffPrincipal

CannedEditor = Annotated[StaffPrincipal, Depends(scoped("conversations:write", roles=(Role.admin, Role.supervisor)))]
