"""Imports every module that registers job handlers, event listeners or channel adapters, so the
registries are complete in every process (server, worker, CLI, tests)."""

import swarmdesk.automation.listeners  # noqa: F401
import swarmdesk.automation.tasks  # noqa: F401
import swarmdesk.channels.api.adapter  # noqa: F401
import swarmdesk.channels.email.adapter  # noqa: F401
import swarmdesk.channels.meta.messenger  # noqa: F401
import swarmdesk.channels.meta.whatsapp  # noqa: F401
import swarmdesk.channels.outbound  # noqa: F401
import swarmdesk.channels.telegram.adapter  # noqa: F401
import swarmdesk.channels.twilio.sms  # noqa: F401
import swarmdesk.channels.twilio.voice  # noqa: F401
import swarmdesk.channels.twilio.whatsapp  # noqa: F401
import swarmdesk.channels.webchat.tasks  # noqa: F401
import swarmdesk.contacts.tasks  # noqa: F401
import swarmdesk.portal.tasks  # noqa: F401
import swarmdesk.preferences.listeners  # noqa: F401
import swarmdesk.preferences.tasks  # noqa: F401
import swarmdesk.realtime.tasks  # noqa: F401
import swarmdesk.routing.listeners  # noqa: F401
import swarmdesk.routing.tasks  # noqa: F401
import swarmdesk.sla.listeners  # noqa: F401
import swarmdesk.sla.tasks  # noqa: F401
import swarmdesk.swarming.listeners  # noqa: F401
import swarmdesk.swarming.tasks  # noqa: F401
import swarmdesk.webhooks.listeners  # noqa: F401
import swarmdesk.webhooks.tasks  # noqa: F401
