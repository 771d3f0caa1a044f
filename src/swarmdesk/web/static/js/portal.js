// The customer portal. Pages are server-rendered; this module sends what the customer writes through
// the JSON API (echoing the portal's CSRF token) and shows new public replies live through the
// customer real-time queue. Text from people only ever goes into the page through textContent.
import { ApiError, fileToBase64 } from "./api.js";
import { $, $all, announce, el } from "./dom.js";
import { Realtime } from "./realtime.js";

const body = document.body;
const base = body.dataset.base || "";
const accountName = body.dataset.accountName || "";
const STATUS = {
  open: ["Open", "open"], pending: ["Waiting for you", "pending"], snoozed: ["Open", "open"],
  resolved: ["Resolved", "resolved"], closed: ["Closed", "closed"],
};

function csrfToken() {
  const prefix = "sd_portal_csrf=";
  const match = document.cookie.split("; ").find((c) => c.startsWith(prefix));
  return match ? decodeURIComponent(match.slice(prefix.length)) : "";
}

// The portal's session is a cookie: unsafe methods echo its CSRF token, and the real-time
// registration says it is the customer (a browser may carry an agent's session cookie too).
async function call(method, path, payload) {
  const headers = { accept: "application/json", "x-swarmdesk-principal": "customer" };
  if (method !== "GET" && method !== "HEAD") headers["x-csrf-token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (payload !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(payload);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.assign(base);
    throw new ApiError(401, { detail: "Your session has ended; sign in again." });
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : { detail: await response.text() };
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// --- times and sizes ---------------------------------------------------------------------------
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function localTime(node) {
  const at = new Date(node.getAttribute("datetime"));
  if (Number.isNaN(at.getTime())) return;
  node.title = dateFormat.format(at);
  if (!node.hasAttribute("data-relative")) node.textContent = dateFormat.format(at);
}

function sizeText(bytes) {
  if (bytes < 1024) return `${bytes} Bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

$all("time[datetime]").forEach(localTime);

async function attachmentsOf(input) {
  const files = Array.from((input && input.files) || []);
  return Promise.all(files.map(async (file) => ({
    filename: file.name, content_type: file.type || "application/octet-stream", data_base64: await fileToBase64(file),
  })));
}

function showError(node, text) {
  node.textContent = text;
  node.hidden = !text;
}

function startLive(handlers, onReload) {
  const live = new Realtime({ register: () => call("POST", "/api/v1/realtime/register") });
  for (const [type, handler] of Object.entries(handlers)) live.on(type, handler);
  if (onReload) live.on("realtime.reload", onReload);
  live.start().catch((error) => console.warn("live updates are off:", error.message));
  // Signing out ends this session's connection: the page is leaving, so it stops listening first
  // (catching up would race the sign-out's own navigation).
  const signOut = document.querySelector("form.sign-out");
  if (signOut) signOut.addEventListener("submit", () => live.stop());
  return live;
}

// --- one conversation --------------------------------------------------------------------------
function messageItem(m) {
  const mine = m.sender.type === "contact";
  const who = mine ? "You" : (m.sender.type === "user" ? m.sender.name : accountName);
  const time = el("time", { datetime: m.created_at });
  localTime(time);
  // (An email's raw original is kept for agents; it is not shown back to the customer who sent it.)
  const shown = (m.attachments || []).filter((a) => !(mine && a.content_type === "message/rfc822"));
  const files = shown.map((a) => el("li", {},
    el("a", { class: "attachment", href: a.url, download: a.filename, text: a.filename }), " ",
    el("span", { class: "hint", text: sizeText(a.size) })));
  return el("li", { class: `msg ${mine ? "mine" : "theirs"}`, dataset: { messageId: String(m.id) } },
    el("p", { class: "byline" }, el("strong", { text: who }), " ", time),
    m.content ? el("div", { class: "body", text: m.content }) : null,
    files.length ? el("ul", { class: "attachments", "aria-label": "Attachments" }, files) : null);
}

function conversationPage(root) {
  const id = Number(root.dataset.conversationId);
  const thread = $("#thread");
  const typing = $("#typing");
  const status = $("#conversation-status");
  let lastId = Number(root.dataset.lastMessageId || 0);
  let typingTimer = null;

  function append(m) {
    if (m.conversation_id !== id || thread.querySelector(`[data-message-id="${Number(m.id)}"]`)) return false;
    const item = messageItem(m);
    thread.appendChild(item);
    lastId = Math.max(lastId, m.id);
    item.scrollIntoView({ block: "nearest" });
    return true;
  }

  async function catchUp() {
    const page = await call("GET", `/api/v1/customer/conversations/${id}/messages?after_id=${lastId}&limit=200`);
    for (const m of page.items) append(m);
  }

  startLive({
    "customer.message_created": (event) => {
      if (!append(event.message)) return;
      if (event.message.sender.type !== "contact") {
        typing.hidden = true;
        announce(`New reply from ${event.message.sender.name || accountName}`);
      }
    },
    "customer.conversation_updated": (event) => {
      if (event.conversation.id !== id) return;
      const [label, cls] = STATUS[event.conversation.status] || [event.conversation.status, ""];
      status.textContent = label;
      status.className = `badge ${cls}`;
      if (event.conversation.status === "closed") location.reload();
    },
    "customer.typing": (event) => {
      if (event.conversation_id !== id) return;
      typing.textContent = `${event.sender_name || accountName} is typing…`;
      typing.hidden = !event.typing;
      window.clearTimeout(typingTimer);
      if (event.typing) typingTimer = window.setTimeout(() => { typing.hidden = true; }, 10000);
    },
  }, () => catchUp().catch(() => location.reload()));

  const last = thread.lastElementChild;
  if (last) last.scrollIntoView({ block: "nearest" });

  const form = $("#reply-form");
  if (!form) return;
  const text = $("#reply-text");
  const files = $("#reply-files");
  const error = $("#reply-error");
  const send = form.querySelector("button[type=submit]");
  text.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, "");
    const content = text.value.trim();
    send.disabled = true;
    try {
      const attachments = await attachmentsOf(files);
      if (!content && !attachments.length) {
        showError(error, "Write a message or attach a file.");
        text.focus();
        return;
      }
      append(await call("POST", `/api/v1/portal/conversations/${id}/messages`, { content, attachments }));
      form.reset();
      announce("Your reply was sent.");
      text.focus();
    } catch (failure) {
      showError(error, failure.message);
    } finally {
      send.disabled = false;
    }
  });
}

// --- "My conversations" ------------------------------------------------------------------------
function conversationsPage() {
  const list = $("#conversation-list");
  startLive({
    "customer.message_created": (event) => {
      const row = list && list.querySelector(`[data-conversation-id="${Number(event.message.conversation_id)}"]`);
      if (!row) { location.reload(); return; }  // a conversation this page has not listed yet
      list.prepend(row);
      const time = row.querySelector("time");
      time.setAttribute("datetime", event.message.created_at);
      time.textContent = "just now";
      localTime(time);
      const preview = row.querySelector(".row-preview");
      if (preview && event.message.content) {
        preview.textContent = "";
        if (event.message.sender.type === "contact") preview.append(el("span", { class: "muted", text: "You:" }), " ");
        preview.append(event.message.content);
      }
      if (event.message.sender.type !== "contact") {
        row.querySelector("[data-new-reply]").hidden = false;
        announce(`New reply in ${row.querySelector(".row-link").textContent}`);
      }
    },
    "customer.conversation_updated": (event) => {
      const row = list && list.querySelector(`[data-conversation-id="${Number(event.conversation.id)}"]`);
      if (!row) return;
      const [label, cls] = STATUS[event.conversation.status] || [event.conversation.status, ""];
      const badge = row.querySelector("[data-status]");
      badge.textContent = label;
      badge.className = `badge ${cls}`;
    },
  });
}

// --- a new conversation ------------------------------------------------------------------------
function newConversationPage(form) {
  const error = $("#new-error");
  const send = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, "");
    const subject = $("#new-subject").value.trim();
    const content = $("#new-content").value.trim();
    if (!subject || !content) {
      showError(error, "Give your conversation a subject and a message.");
      (subject ? $("#new-content") : $("#new-subject")).focus();
      return;
    }
    send.disabled = true;
    try {
      const attachments = await attachmentsOf($("#new-files"));
      const conversation = await call("POST", "/api/v1/portal/conversations", { subject, content, attachments });
      location.assign(`${base}/conversations/${conversation.id}`);
    } catch (failure) {
      showError(error, failure.message);
      send.disabled = false;
    }
  });
}

// --- contact preferences -----------------------------------------------------------------------
function preferencesPage(form) {
  const error = $("#prefs-error");
  const status = $("#prefs-status");
  const save = form.querySelector("button[type=submit]");
  const zone = $("#quiet-zone");
  // No zone saved yet: start from the browser's own, if the server knows it.
  if (!form.dataset.savedZone) {
    const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (mine && Array.from(zone.options).some((o) => o.value === mine)) zone.value = mine;
  }
  // A section's fields are off while its checkbox is.
  const toggles = $all("input[data-toggles]", form);
  function applyToggles() {
    for (const box of toggles) {
      for (const input of $all("input, select", document.getElementById(box.dataset.toggles))) input.disabled = !box.checked;
    }
  }
  toggles.forEach((box) => box.addEventListener("change", applyToggles));
  applyToggles();
  form.addEventListener("change", () => { status.textContent = ""; });

  function labelOf(kind) {
    const input = form.querySelector(`input[name=never][value="${CSS.escape(kind)}"]`);
    return input ? input.parentElement.textContent.trim() : kind;
  }

  function payload() {
    const preferred = form.querySelector("input[name=preferred]:checked");
    const rules = {
      preferred_channel: preferred && preferred.value ? preferred.value : null,
      never_channels: $all("input[name=never]:checked", form).map((box) => box.value),
      quiet_hours: null,
      contact_cap: null,
    };
    if ($("#quiet-on").checked) {
      rules.quiet_hours = { start: $("#quiet-start").value, end: $("#quiet-end").value, time_zone: zone.value };
    }
    if ($("#cap-on").checked) {
      rules.contact_cap = { max_contacts: Number($("#cap-count").value), per_days: Number($("#cap-days").value) };
    }
    return rules;
  }

  function problemOf(rules) {
    if (rules.preferred_channel && rules.never_channels.includes(rules.preferred_channel)) {
      return `${labelOf(rules.preferred_channel)} cannot be both your preferred channel and one never to use.`;
    }
    const q = rules.quiet_hours;
    if (q && (!q.start || !q.end)) return "Give your quiet hours a start and an end time.";
    if (q && q.start === q.end) return "Quiet hours need different start and end times.";
    const c = rules.contact_cap;
    if (c && !(Number.isInteger(c.max_contacts) && c.max_contacts >= 1 && c.max_contacts <= 100)) {
      return "The number of messages must be a whole number from 1 to 100.";
    }
    if (c && !(Number.isInteger(c.per_days) && c.per_days >= 1 && c.per_days <= 365)) {
      return "The number of days must be a whole number from 1 to 365.";
    }
    return "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(error, "");
    status.textContent = "";
    const rules = payload();
    const problem = problemOf(rules);
    if (problem) { showError(error, problem); return; }
    save.disabled = true;
    try {
      const saved = await call("PUT", "/api/v1/customer/preferences", rules);
      form.dataset.savedZone = saved.quiet_hours ? saved.quiet_hours.time_zone : "";
      status.textContent = "Your preferences are saved.";
      announce("Your preferences are saved.");
    } catch (failure) {
      showError(error, failure.message);
    } finally {
      save.disabled = false;
    }
  });
}

const page = body.dataset.page;
if (page === "conversation" && $("#conversation")) conversationPage($("#conversation"));
else if (page === "conversations") conversationsPage();
else if (page === "new" && $("#new-form")) newConversationPage($("#new-form"));
else if (page === "preferences" && $("#prefs-form")) preferencesPage($("#prefs-form"));
