// Every workspace page: notifications, keyboard shortcuts, sign-out, then the page's own module.
import { api } from "./api.js";
import { $, el, announce, isTyping, toast } from "./dom.js";
import { realtime, shortcutsEnabled } from "./session.js";

const body = document.body;

// --- notifications -------------------------------------------------------------------------------
const bell = $("#bell");
const bellCount = $("#bell-count");
const panel = $("#notifications");
const list = $("#notification-list");

function setUnread(count) {
  bellCount.textContent = count > 99 ? "99+" : String(count);
  bellCount.hidden = count === 0;
  bell.setAttribute("aria-label", `Notifications, ${count} unread`);
}

const KIND_TEXT = {
  assigned: (n) => `${n.actor_name || "Someone"} assigned you a conversation`,
  mentioned: (n) => `${n.actor_name || "Someone"} mentioned you`,
  customer_replied: (n) => `${n.actor_name || "The customer"} replied`,
  sla_warning: () => "A response deadline is near",
  swarm_invite: (n) => `${n.actor_name || "Someone"} invited you to a swarm`,
};

function notificationItem(n) {
  const text = (KIND_TEXT[n.kind] || (() => n.kind))(n);
  const link = el("a", { class: `notification${n.read_at ? "" : " unread"}`, href: `/app/conversations/${n.conversation_id}`,
                         dataset: { id: String(n.id) } },
    el("strong", { text }), el("div", { class: "muted", text: n.snippet || "" }));
  link.addEventListener("click", () => { if (!n.read_at) api("POST", "/api/v1/notifications/read", { ids: [n.id] }).catch(() => {}); });
  return el("li", {}, link);
}

async function loadNotifications() {
  try {
    const page = await api("GET", "/api/v1/notifications?limit=30");
    list.textContent = "";
    if (!page.items.length) list.appendChild(el("li", { class: "empty", text: "No notifications yet." }));
    for (const n of page.items) list.appendChild(notificationItem(n));
    const unread = await api("GET", "/api/v1/notifications/unread-count");
    setUnread(unread.count);
  } catch (error) {
    if (error.status !== 404) console.warn("notifications", error);
  }
}

function closePanel(returnFocus) {
  if (panel.hidden) return;
  panel.hidden = true;
  bell.setAttribute("aria-expanded", "false");
  if (returnFocus) bell.focus();
}
bell.addEventListener("click", () => {
  const open = panel.hidden;
  panel.hidden = !open;
  bell.setAttribute("aria-expanded", String(open));
  if (open) { loadNotifications(); panel.querySelector("button, a")?.focus(); }
});
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !panel.hidden) { event.preventDefault(); closePanel(true); }
});
document.addEventListener("click", (event) => {
  if (!panel.hidden && !panel.contains(event.target) && !bell.contains(event.target)) closePanel(false);
});
$("#notifications-read-all").addEventListener("click", async () => {
  await api("POST", "/api/v1/notifications/read", { all: true });
  loadNotifications();
});
const desktop = $("#notifications-desktop");
if ("Notification" in window && Notification.permission === "default") {
  desktop.hidden = false;
  desktop.addEventListener("click", async () => { await Notification.requestPermission(); desktop.hidden = true; });
}

realtime.on("notification.created", (event) => {
  const n = event.notification;
  const text = (KIND_TEXT[n.kind] || (() => n.kind))(n);
  announce(text);
  toast(text);
  if (!panel.hidden) loadNotifications();
  else api("GET", "/api/v1/notifications/unread-count").then((r) => setUnread(r.count)).catch(() => {});
  if ("Notification" in window && Notification.permission === "granted" && document.hidden) {
    const shown = new Notification(text, { body: n.snippet || "", tag: `conversation-${n.conversation_id}` });
    shown.addEventListener("click", () => { window.focus(); location.assign(`/app/conversations/${n.conversation_id}`); });
  }
});
realtime.on("notification.read", (event) => setUnread(event.unread_count));

// --- my presence: routing gives work to agents who are online -------------------------------------
const presence = $("#my-presence");
api("GET", "/api/v1/routing/presence").then((p) => { presence.value = p.status; }).catch(() => {});
presence.addEventListener("change", async () => {
  try { await api("PUT", "/api/v1/routing/presence", { status: presence.value }); announce(`Status: ${presence.value}`); }
  catch (error) { toast(error.message, "error"); }
});
realtime.on("routing.presence_changed", (e) => { if (e.user_id === Number(body.dataset.userId)) presence.value = e.status; });

// --- shortcuts and the rest of the chrome ---------------------------------------------------------
const help = $("#shortcuts");
$("#shortcuts-button").addEventListener("click", () => help.showModal());
// Single-key shortcuts can be switched off (WCAG 2.1.4); the choice stays in this browser.
const toggle = $("#shortcuts-enabled");
toggle.checked = shortcutsEnabled();
toggle.addEventListener("change", () => {
  try { localStorage.setItem("swarmdesk:shortcuts", toggle.checked ? "on" : "off"); } catch (e) { /* private mode */ }
});
let lastKey = "";
document.addEventListener("keydown", (event) => {
  const target = event.target;
  const typing = isTyping(target);
  if (typing || event.metaKey || event.ctrlKey || event.altKey) return;
  if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
  if (event.key === "?") { event.preventDefault(); help.showModal(); return; }
  if (!shortcutsEnabled()) return;
  if (lastKey === "g" && event.key === "i") { location.assign("/app"); return; }
  lastKey = event.key;
});
$("#sign-out").addEventListener("click", async () => {
  // Live updates stop first: signing out ends this session's connection (credential.revoked),
  // and the page must not try to catch up on it while it leaves.
  realtime.stop();
  try { await api("POST", "/api/v1/auth/logout"); } finally { location.assign("/login"); }
});

export function startRealtime() {
  realtime.start().catch(() => realtime.reload());
}

// The page's own module (inbox, conversation, admin …) is named by <body data-page>.
const pageModules = {
  inbox: "./inbox.js",
  conversation: "./conversation.js",
};
// Handlers are registered before the connection starts, so no early event is missed.
const moduleName = pageModules[body.dataset.page];
(moduleName ? import(moduleName) : Promise.resolve())
  .catch((error) => console.error("page module", error))
  .finally(() => { startRealtime(); loadNotifications(); });
