"""Imports every module that registers job handlers, event listeners or channel adapters, so the
registries are complete in every process (server, worker, CLI, tests)."""

import swarmdesk.channels.api.adapter  # noqa: F401
import swarmdesk.channels.outbound  # noqa: F401
import swarmdesk.webhooks.listeners  # noqa: F401
import swarmdesk.webhooks.tasks  # noqa: F401
