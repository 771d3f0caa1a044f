// One conversation: live timeline, settings, reply/note composer with canned responses and
// @mentions, collision presence (who else is viewing or typing) and the customer sidebar.
import { api, fileToBase64, fragment } from "./api.js";
import { $, $all, el, announce, debounce, isTyping, throttle, toast } from "./dom.js";
import { me, realtime, shortcutsEnabled } from "./session.js";

const root = $("#main");
const id = Number(root.dataset.conversationId);
const base = `/api/v1/conversations/${id}`;
const timeline = $("#timeline");
const people = JSON.parse($("#people").dataset.people || "[]");
let lastMessageId = Number(root.dataset.lastMessageId || 0);
let lastActivityId = Number(root.dataset.lastActivityId || 0);

// --- settings -------------------------------------------------------------------------------------------
async function patch(change, done) {
  try {
    // The answer is shown at once: the live event confirms it later, but is not needed for it.
    applyConversation(await api("PATCH", base, change));
    if (done) toast(done);
  } catch (error) { toast(error.message, "error"); }
}
$("#status").addEventListener("change", (e) => patch({ status: e.target.value }, `Status: ${e.target.value}`));
$("#priority").addEventListener("change", (e) => patch({ priority: e.target.value }, `Priority: ${e.target.value}`));
$("#assignee").addEventListener("change", (e) => patch({ assignee_id: e.target.value ? Number(e.target.value) : null }, "Assignee changed"));
$("#team").addEventListener("change", (e) => patch({ team_id: e.target.value ? Number(e.target.value) : null }, "Team changed"));
const resolve = $("#resolve");
if (resolve) resolve.addEventListener("click", () => patch({ status: "resolved" }, "Resolved"));

async function tags(change) {
  try {
    const now = await api("POST", `${base}/tags`, change);
    renderTags(now);
  } catch (error) { toast(error.message, "error"); }
}
function renderTags(names) {
  const box = $("#tags");
  box.replaceChildren(...names.map((tag) => el("span", { class: "badge" }, `#${tag} `,
    el("button", { type: "button", class: "btn small remove-tag", "aria-label": `Remove tag ${tag}`, dataset: { tag }, text: "\u00d7" }))));
}
$("#tags").addEventListener("click", (e) => {
  const button = e.target.closest(".remove-tag");
  if (button) tags({ remove: [button.dataset.tag] });
});
$("#add-tag").addEventListener("keydown", (e) => {
  if (e.key !== "Enter") return;
  e.preventDefault();
  const value = e.target.value.trim();
  if (value) { tags({ add: [value] }); e.target.value = ""; }
});

// The newest state shown wins: a PATCH's answer arriving after a later live event is not applied.
let shownUpdatedAt = 0;
function applyConversation(c) {
  const at = Date.parse(c.updated_at || "");
  if (!Number.isNaN(at)) {
    if (at < shownUpdatedAt) return;
    shownUpdatedAt = at;
  }
  $("#status").value = c.status;
  $("#priority").value = c.priority;
  $("#assignee").value = c.assignee_id ? String(c.assignee_id) : "";
  $("#team").value = c.team_id ? String(c.team_id) : "";
  renderTags(c.tags || []);
  if (resolve) resolve.hidden = c.status === "resolved";
}

// --- the timeline ----------------------------------------------------------------------------------------
async function pullTimeline() {
  const items = await fragment(`/app/conversations/${id}/timeline?after_id=${lastMessageId}&after_activity_id=${lastActivityId}`);
  let added = 0;
  for (const node of Array.from(items.children || items.childNodes)) {
    if (!(node instanceof HTMLElement)) continue;
    const messageId = node.dataset.messageId;
    const activityId = node.dataset.activityId;
    if (messageId && timeline.querySelector(`[data-message-id="${messageId}"]`)) continue;
    if (activityId && timeline.querySelector(`[data-activity-id="${activityId}"]`)) continue;
    timeline.appendChild(node);
    if (messageId) { lastMessageId = Math.max(lastMessageId, Number(messageId)); added += 1; }
    if (activityId) lastActivityId = Math.max(lastActivityId, Number(activityId));
  }
  if (added) timeline.lastElementChild.scrollIntoView({ block: "end" });
  return added;
}
const pull = throttle(() => pullTimeline().then(markRead).catch((e) => console.warn(e)), 300);

function markRead() {
  if (document.hidden) return;
  api("POST", `${base}/read`).catch(() => {});
}

// --- presence: who else is here, and typing ----------------------------------------------------------
const viewers = new Map(); // user id -> {name, composing, typing, seen}
function renderPresence() {
  const now = Date.now();
  const parts = [];
  for (const [userId, v] of viewers) {
    if (now - v.seen > 45000) { viewers.delete(userId); continue; }
    if (v.typing && String(userId).startsWith("c")) parts.push(`${v.name} is typing…`);
    else if (v.typing) parts.push(`${v.name} is typing ${v.private ? "a note" : "a reply"}…`);
    else parts.push(`${v.name} is viewing`);
  }
  const text = parts.join(" · ");
  if ($("#presence").textContent !== text) $("#presence").textContent = text;  // no re-announcing
}
window.setInterval(renderPresence, 5000);
realtime.on("conversation.viewing", (e) => {
  if (e.conversation_id !== id || e.user_id === me.id) return;
  if (e.state === "left") viewers.delete(e.user_id);
  else {
    const known = viewers.has(e.user_id);
    viewers.set(e.user_id, { ...(viewers.get(e.user_id) || {}), name: e.name, seen: Date.now() });
    // Someone new opened it: answer at once so they see us too (not only at our next heartbeat).
    if (!known) answerNewcomer();
  }
  renderPresence();
});
realtime.on("conversation.typing", (e) => {
  if (e.conversation_id !== id) return;
  if (e.sender_type === "user" && e.sender_id === me.id) return;
  if (e.sender_type === "contact") {
    // The customer is never "viewing": only their typing shows, and only while it lasts.
    if (e.typing) viewers.set(`c${e.sender_id}`, { name: `${e.sender_name} (customer)`, typing: true, seen: Date.now() });
    else viewers.delete(`c${e.sender_id}`);
  } else {
    const current = viewers.get(e.sender_id) || { name: e.sender_name };
    viewers.set(e.sender_id, { ...current, name: e.sender_name, typing: e.typing, private: e.private, seen: Date.now() });
  }
  renderPresence();
});
function heartbeat() { api("POST", `${base}/viewing`, {}).catch(() => {}); }
const answerNewcomer = debounce(heartbeat, 300);
heartbeat();
window.setInterval(heartbeat, 20000);
window.addEventListener("pagehide", () => {
  fetch(`${base}/viewing`, { method: "DELETE", keepalive: true, credentials: "same-origin",
    headers: { "x-csrf-token": (document.cookie.match(/(?:^|; )sd_csrf=([^;]*)/) || [])[1] || "" } });
});

realtime.on("message.created", (e) => {
  if (e.message.conversation_id !== id) return;
  if (e.message.sender.type === "user") { const v = viewers.get(e.message.sender.id); if (v) v.typing = false; }
  else viewers.delete(`c${e.message.sender.id}`);
  renderPresence();
  if (e.message.direction === "incoming") announce(`New message from ${e.message.sender.name}`);
  pull();
});
realtime.on("message.updated", (e) => {
  if (e.message.conversation_id !== id) return;
  const status = timeline.querySelector(`[data-message-id="${e.message.id}"] .delivery`);
  if (status) { status.textContent = e.message.delivery_status; status.dataset.status = e.message.delivery_status; }
});
for (const type of ["conversation.updated", "conversation.status_changed", "conversation.assigned"]) {
  realtime.on(type, (e) => { if (e.conversation.id === id) { applyConversation(e.conversation); pull(); } });
}
const refreshSidebar = debounce(async () => {
  try { $("#sidebar").replaceChildren(await fragment(`/app/conversations/${id}/sidebar`)); } catch (e) { console.warn(e); }
}, 200);
realtime.on("contact.updated", (e) => { if (e.contact.id === Number(root.dataset.contactId)) refreshSidebar(); });
realtime.on("realtime.reload", () => { pull(); refreshSidebar(); });
realtime.on("realtime.ready", () => pull());
for (const type of ["swarm.started", "swarm.ended", "sla.warning", "sla.breached", "automation.rule_applied"]) {
  realtime.on(type, (e) => { if ((e.conversation_id || (e.swarm && e.swarm.conversation_id)) === id) pull(); });
}  // whatever happened while the page loaded

// --- composer ---------------------------------------------------------------------------------------------
const composer = $("#composer");
const text = $("#composer-text");
const suggest = $("#suggest");
const canReply = root.dataset.canReply === "true";
let mode = canReply ? "reply" : "note";
const mentions = new Map(); // "@Name" -> user id
let files = [];

function setMode(next) {
  mode = next;
  composer.classList.toggle("note", mode === "note");
  $("#tab-reply").setAttribute("aria-selected", String(mode === "reply"));
  $("#tab-note").setAttribute("aria-selected", String(mode === "note"));
  $("#channel-label").hidden = mode === "note";
  text.placeholder = mode === "note" ? "Write an internal note… (type @ to mention a colleague)"
                                     : "Write a reply… (type / for canned responses)";
  $("#send").textContent = mode === "note" ? "Add note" : "Send";
}
setMode(mode);
$("#tab-reply").addEventListener("click", () => { setMode("reply"); text.focus(); });
$("#tab-note").addEventListener("click", () => { setMode("note"); text.focus(); });
$("#attach").addEventListener("change", (e) => {
  files = Array.from(e.target.files || []);
  $("#attached").textContent = files.map((f) => f.name).join(", ");
});

let typingSent = 0;
let typingTimer = null;
function typing() {
  const now = Date.now();
  if (now - typingSent > 3000) {
    typingSent = now;
    api("POST", `${base}/typing`, { private: mode === "note" }).catch(() => {});
  }
  window.clearTimeout(typingTimer);
  typingTimer = window.setTimeout(stopTyping, 5000);
}
function stopTyping() {
  if (!typingSent) return;
  typingSent = 0;
  api("DELETE", `${base}/typing`).catch(() => {});
}

// Suggestions: "/" at the start of a word lists canned responses, "@" in a note lists colleagues.
let choices = [];
let active = -1;
function closeSuggest() { suggest.hidden = true; choices = []; active = -1; text.removeAttribute("aria-activedescendant"); }
function showSuggest(items) {
  choices = items;
  active = items.length ? 0 : -1;
  suggest.replaceChildren(...items.map((item, i) => el("li", { role: "option", id: `suggest-${i}`, "aria-selected": String(i === active),
    dataset: { index: String(i) } }, el("strong", { text: item.label }), item.hint ? el("span", { class: "hint", text: ` ${item.hint}` }) : null)));
  suggest.hidden = items.length === 0;
  if (active >= 0) text.setAttribute("aria-activedescendant", `suggest-${active}`);
}
function currentToken() {
  const upto = text.value.slice(0, text.selectionStart);
  const match = upto.match(/(^|\s)([/@])([^\s/@]*)$/);
  return match ? { trigger: match[2], word: match[3], start: upto.length - match[3].length - 1 } : null;
}
const lookup = debounce(async () => {
  const token = currentToken();
  if (!token) { closeSuggest(); return; }
  if (token.trigger === "@" && mode === "note") {
    const word = token.word.toLowerCase();
    showSuggest(people.filter((p) => p.id !== me.id && p.name.toLowerCase().includes(word)).slice(0, 8)
      .map((p) => ({ label: p.name, hint: p.role, apply: () => insert(token, `@${p.name} `, () => mentions.set(`@${p.name}`, p.id)) })));
  } else if (token.trigger === "/" && mode === "reply") {
    try {
      const found = await api("GET", `/api/v1/canned-responses?q=${encodeURIComponent(token.word)}&limit=8`);
      const items = Array.isArray(found) ? found : found.items;
      showSuggest(items.map((r) => ({ label: `/${r.short_code}`, hint: r.title, apply: async () => {
        const rendered = await api("GET", `/api/v1/canned-responses/${r.id}/render?conversation_id=${id}`);
        insert(token, rendered.text || rendered.body || "");
      } })));
    } catch (error) { closeSuggest(); }
  } else closeSuggest();
}, 120);
function insert(token, value, after) {
  const before = text.value.slice(0, token.start);
  const rest = text.value.slice(text.selectionStart);
  text.value = before + value + rest;
  const caret = before.length + value.length;
  text.setSelectionRange(caret, caret);
  if (after) after();
  closeSuggest();
  text.focus();
}
suggest.addEventListener("mousedown", (e) => {
  const li = e.target.closest("li");
  if (!li) return;
  e.preventDefault();
  choices[Number(li.dataset.index)].apply();
});
text.addEventListener("input", () => { typing(); lookup(); });
text.addEventListener("blur", () => window.setTimeout(closeSuggest, 150));
text.addEventListener("keydown", (e) => {
  if (!suggest.hidden && choices.length) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : choices.length - 1)) % choices.length;
      $all("li", suggest).forEach((li, i) => li.setAttribute("aria-selected", String(i === active)));
      text.setAttribute("aria-activedescendant", `suggest-${active}`);
      return;
    }
    if (e.key === "Enter" || e.key === "Tab") { e.preventDefault(); choices[active].apply(); return; }
    if (e.key === "Escape") { e.preventDefault(); closeSuggest(); return; }
  }
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); composer.requestSubmit(); }
  if (e.key === "Escape") text.blur();
});

composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = text.value.trim();
  if (!content && !files.length) { $("#composer-error").textContent = "Write something first."; return; }
  $("#composer-error").textContent = "";
  const body = { content, private: mode === "note" };
  if (mode === "reply") {
    const channel = $("#reply-channel");
    if (channel && channel.value) body.inbox_id = Number(channel.value);
  } else {
    const ids = [...mentions].filter(([label]) => content.includes(label)).map(([, userId]) => userId);
    if (ids.length) body.mention_ids = [...new Set(ids)];
  }
  if (files.length) {
    body.attachments = await Promise.all(files.map(async (f) => ({ filename: f.name, content_type: f.type || "application/octet-stream",
                                                                  data_base64: await fileToBase64(f) })));
  }
  const send = $("#send");
  send.disabled = true;
  try {
    await api("POST", `${base}/messages`, body);
    text.value = "";
    files = [];
    $("#attach").value = "";
    $("#attached").textContent = "";
    mentions.clear();
    stopTyping();
    announce(mode === "note" ? "Note added" : "Reply sent");
    await pullTimeline();
  } catch (error) {
    $("#composer-error").textContent = error.message;
  } finally { send.disabled = false; }
});

// --- macros: named bundles of actions, applied in one click -----------------------------------------
const macroSelect = $("#macro");
api("GET", "/api/v1/macros").then((macros) => {
  for (const m of macros) macroSelect.appendChild(el("option", { value: String(m.id), text: m.name }));
  if (!macros.length) macroSelect.closest("label").hidden = true;
}).catch(() => { macroSelect.closest("label").hidden = true; });
macroSelect.addEventListener("change", async () => {
  const macroId = macroSelect.value;
  if (!macroId) return;
  const name = macroSelect.selectedOptions[0].textContent;
  try {
    const done = await api("POST", `${base}/macros/${macroId}/apply`);
    if (done && done.conversation) applyConversation(done.conversation);
    toast(`Applied “${name}”`);
    pull();
  } catch (error) { toast(error.message, "error"); }
  macroSelect.value = "";
});

// --- sidebar: notes about the customer and merge suggestions ----------------------------------------
$("#sidebar").addEventListener("submit", async (e) => {
  if (e.target.id !== "contact-note-form") return;
  e.preventDefault();
  const area = $("#contact-note");
  if (!area.value.trim()) return;
  try {
    await api("POST", `/api/v1/contacts/${root.dataset.contactId}/notes`, { body: area.value });
    refreshSidebar();
  } catch (error) { toast(error.message, "error"); }
});
$("#sidebar").addEventListener("click", async (e) => {
  const merge = e.target.closest("button.merge");
  const dismiss = e.target.closest("button.dismiss");
  try {
    if (merge) {
      await api("POST", `/api/v1/merge-suggestions/${merge.dataset.suggestionId}/accept`, {});
      toast("Profiles merged");
      refreshSidebar();
    } else if (dismiss) {
      await api("POST", `/api/v1/merge-suggestions/${dismiss.dataset.suggestionId}/dismiss`);
      refreshSidebar();
    }
  } catch (error) { toast(error.message, "error"); }
});

// --- keyboard ----------------------------------------------------------------------------------------------
document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (isTyping(t)) return;
  if (e.metaKey || e.ctrlKey || e.altKey) return;
  if (e.key !== "Escape" && !shortcutsEnabled()) return;
  if (e.defaultPrevented || document.querySelector("dialog[open]")) return;
  if (e.key === "r" && canReply) { e.preventDefault(); setMode("reply"); text.focus(); }
  else if (e.key === "n") { e.preventDefault(); setMode("note"); text.focus(); }
  else if (e.key === "a" && me.role !== "expert") { e.preventDefault(); patch({ assignee_id: me.id }, "Assigned to you"); }
  else if (e.key === "e" && me.role !== "expert") { e.preventDefault(); patch({ status: "resolved" }, "Resolved"); }
  // Back to the inbox, unless that would lose a draft.
  else if (e.key === "Escape" && !text.value.trim() && !files.length) { location.assign("/app"); }
});

timeline.lastElementChild && timeline.lastElementChild.scrollIntoView({ block: "end" });
markRead();
document.addEventListener("visibilitychange", markRead);
