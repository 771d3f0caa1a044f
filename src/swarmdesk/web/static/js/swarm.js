// The swarm room on the conversation view: fills <section id="swarm"> from the server's fragment
// (the room, or "Start a swarm" with ranked experts), changes things through the JSON API, and
// keeps the room live (messages, members, typing, who is here) from the real-time events.
import { api, fragment } from "./api.js";
import { $, $all, el, announce, debounce, toast } from "./dom.js";
import { me, realtime } from "./session.js";

const section = document.getElementById("swarm");
const conversationId = section ? Number(section.dataset.conversationId) : 0;
const apiBase = `/api/v1/conversations/${conversationId}/swarms`;
const pageBase = `/app/conversations/${conversationId}/swarm`;

let swarmId = null;
let myState = "";
let lastId = 0;
const typists = new Map(); // user id -> {name, until}
const here = new Map(); // user id -> last heartbeat (ms)

// --- the stylesheet: the page's <head> is not ours, so it is added once, before the first render.
let cssLoaded = null;
function ensureCss(href) {
  if (cssLoaded) return cssLoaded;
  cssLoaded = new Promise((resolve) => {
    const link = el("link", { rel: "stylesheet", href });
    link.addEventListener("load", resolve);
    link.addEventListener("error", resolve);
    document.head.appendChild(link);
  });
  return cssLoaded;
}

// --- rendering ------------------------------------------------------------------------------------
async function load() {
  const content = await fragment(pageBase);
  const panel = content.querySelector(".swarm-panel");
  if (!panel) {
    section.replaceChildren();
    section.hidden = true;
    swarmId = null;
    return;
  }
  await ensureCss(panel.dataset.css);
  const previous = swarmId;
  swarmId = panel.dataset.swarmId ? Number(panel.dataset.swarmId) : null;
  myState = panel.dataset.myState || "";
  lastId = Number(panel.dataset.lastMessageId || 0);
  // What is being typed survives the re-render (read now: typing went on while we fetched).
  const box = $("#swarm-text");
  const draft = box ? { value: box.value, start: box.selectionStart, end: box.selectionEnd,
                        focused: document.activeElement === box } : null;
  section.replaceChildren(content);
  section.hidden = false;
  if (swarmId !== previous) { typists.clear(); here.clear(); }
  const text = $("#swarm-text");
  if (text && draft) {
    text.value = draft.value;
    if (draft.focused) { text.focus(); text.setSelectionRange(draft.start, draft.end); }
  }
  scrollMessages();
  renderTyping();
  renderHere();
  if (swarmId && swarmId !== previous) heartbeat();
}
const reload = debounce(() => load().catch((error) => console.warn("swarm", error)), 150);

function scrollMessages() {
  const list = $("#swarm-messages");
  if (list) list.scrollTop = list.scrollHeight;
}

async function pullMessages() {
  if (!swarmId) return;
  const items = await fragment(`${pageBase}/${swarmId}/messages?after_id=${lastId}`);
  const list = $("#swarm-messages");
  if (!list) return;
  for (const node of Array.from(items.children || [])) {
    const id = Number(node.dataset.swarmMessageId || 0);
    if (!id || list.querySelector(`[data-swarm-message-id="${id}"]`)) continue;
    const empty = list.querySelector(".swarm-empty");
    if (empty) empty.remove();
    list.appendChild(node);
    lastId = Math.max(lastId, id);
  }
  scrollMessages();
}
const pull = debounce(() => pullMessages().catch((error) => console.warn("swarm", error)), 60);

function renderTyping() {
  const line = $("#swarm-typing");
  if (!line) return;
  const now = Date.now();
  const names = [];
  for (const [userId, t] of typists) {
    if (t.until < now) typists.delete(userId);
    else names.push(t.name);
  }
  const text = names.length === 0 ? "" : names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
  if (line.textContent !== text) line.textContent = text;
}

function renderHere() {
  const now = Date.now();
  for (const badge of $all("[data-here-for]", section)) {
    const userId = Number(badge.dataset.hereFor);
    const seen = userId === me.id ? (swarmId ? now : 0) : here.get(userId) || 0;
    badge.hidden = now - seen > 45000;
  }
}
window.setInterval(() => { renderTyping(); renderHere(); }, 2000);

// --- presence: I have the room open --------------------------------------------------------------
function heartbeat() {
  if (swarmId) api("POST", `${apiBase}/${swarmId}/presence`).catch(() => {});
}
const answerNewcomer = debounce(heartbeat, 300);
window.setInterval(heartbeat, 20000);
window.addEventListener("pagehide", () => {
  if (!swarmId) return;
  const headers = { "x-csrf-token": (document.cookie.match(/(?:^|; )sd_csrf=([^;]*)/) || [])[1] || "" };
  fetch(`${apiBase}/${swarmId}/presence`, { method: "DELETE", keepalive: true, credentials: "same-origin", headers });
});

// --- typing ----------------------------------------------------------------------------------------
let typingSent = 0;
let typingTimer = null;
function typing() {
  if (!swarmId || myState !== "joined") return;
  const now = Date.now();
  if (now - typingSent > 3000) {
    typingSent = now;
    api("POST", `${apiBase}/${swarmId}/typing`).catch(() => {});
  }
  window.clearTimeout(typingTimer);
  typingTimer = window.setTimeout(stopTyping, 5000);
}
function stopTyping() {
  window.clearTimeout(typingTimer);
  if (!typingSent || !swarmId) return;
  typingSent = 0;
  api("DELETE", `${apiBase}/${swarmId}/typing`).catch(() => {});
}

// --- actions (all through the JSON API) ----------------------------------------------------------
function showError(form, error) {
  const slot = (form && form.querySelector(".error")) || $("#swarm-error");
  if (slot) slot.textContent = error.message;
  else toast(error.message, "error");
}

async function openStart(button) {
  const slot = $("#swarm-start-slot");
  const open = slot.hidden;
  button.setAttribute("aria-expanded", String(open));
  slot.hidden = !open;
  if (!open) return;
  slot.replaceChildren(el("p", { class: "hint", text: "Finding experts…" }));
  try {
    slot.replaceChildren(await fragment(`${pageBase}/suggestions?mode=start`));
    const first = slot.querySelector("input[name=invite]") || slot.querySelector("textarea");
    if (first) first.focus();
  } catch (error) { slot.replaceChildren(el("p", { class: "error", role: "alert", text: error.message })); }
}

async function loadInviteForm() {
  const slot = $("#swarm-invite-slot");
  if (!slot || slot.dataset.loaded) return;
  slot.dataset.loaded = "1";
  slot.replaceChildren(el("p", { class: "hint", text: "Finding experts…" }));
  try { slot.replaceChildren(await fragment(`${pageBase}/suggestions?mode=invite`)); }
  catch (error) { slot.replaceChildren(el("p", { class: "error", role: "alert", text: error.message })); delete slot.dataset.loaded; }
}

function checkedIds(form) {
  return $all("input[name=invite]:checked", form).map((input) => Number(input.value));
}

async function submit(form) {
  const button = form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  const slot = form.querySelector(".error");
  if (slot) slot.textContent = "";
  try {
    if (form.id === "swarm-start-form") {
      const note = (form.querySelector("[name=note]") || { value: "" }).value.trim();
      const body = { invite_user_ids: checkedIds(form) };
      if (note) body.note = note;
      await api("POST", apiBase, body);
      announce("Swarm started");
      await load();
    } else if (form.id === "swarm-invite-form") {
      const ids = checkedIds(form);
      if (!ids.length) throw new Error("Choose at least one expert.");
      await api("POST", `${apiBase}/${swarmId}/invitations`, { user_ids: ids });
      announce(`Invited ${ids.length} expert${ids.length === 1 ? "" : "s"}`);
      await load();
    } else if (form.id === "swarm-end-form") {
      const summary = form.querySelector("[name=summary]").value.trim();
      if (!summary) throw new Error("Write a short summary first: it goes on the conversation.");
      await api("POST", `${apiBase}/${swarmId}/end`, { outcome: form.querySelector("[name=outcome]").value, summary });
      announce("Swarm ended");
      await load();
    } else if (form.id === "swarm-message-form") {
      const content = $("#swarm-text").value.trim();
      if (!content) return;
      // Cleared as it is sent, as chats do: the message's own event (or a re-render of the room,
      // which keeps a draft) may arrive before the POST returns, and must not find it still there.
      $("#swarm-text").value = "";
      stopTyping();
      try {
        await api("POST", `${apiBase}/${swarmId}/messages`, { content });
      } catch (error) {
        const box = $("#swarm-text");  // not sent: give the words back unless something new was typed
        if (box && !box.value) box.value = content;
        throw error;
      }
      await pullMessages();
      const box = $("#swarm-text");
      if (box) box.focus();
    }
  } catch (error) {
    showError(form, error);
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

async function act(path, done) {
  try {
    await api("POST", `${apiBase}/${swarmId}/${path}`);
    if (done) announce(done);
    await load();
  } catch (error) { showError(null, error); }
}

if (section) {
  section.addEventListener("submit", (event) => {
    const form = event.target.closest("form");
    if (!form || !section.contains(form)) return;
    event.preventDefault();
    submit(form);
  });
  section.addEventListener("click", (event) => {
    const target = event.target.closest("button");
    if (!target) return;
    if (target.id === "swarm-open-start") openStart(target);
    else if (target.id === "swarm-join") act("join", "You joined the swarm").then(() => { const t = $("#swarm-text"); if (t) t.focus(); });
    else if (target.id === "swarm-leave") act("leave", "You left the swarm");
  });
  section.addEventListener("toggle", (event) => {
    if (event.target.id === "swarm-invite-more" && event.target.open) loadInviteForm();
    if (event.target.id === "swarm-end" && event.target.open) { const s = $("#swarm-summary"); if (s) s.focus(); }
  }, true);
  section.addEventListener("input", (event) => { if (event.target.id === "swarm-text") typing(); });
  section.addEventListener("keydown", (event) => {
    if (event.target.id !== "swarm-text") return;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      event.target.form.requestSubmit();
    } else if (event.key === "Escape") {
      event.stopPropagation();
      event.target.blur();
    }
  });

  // --- live ---------------------------------------------------------------------------------------
  const ours = (e) => e.conversation_id === conversationId;
  realtime.on("swarm.started", (e) => { if (e.swarm.conversation_id === conversationId) reload(); });
  realtime.on("swarm.ended", (e) => {
    if (e.swarm.conversation_id !== conversationId) return;
    if (e.swarm.ended_by_id !== me.id) announce("The swarm ended");
    reload();
  });
  realtime.on("swarm.members_changed", (e) => {
    if (!ours(e)) return;
    if (e.change === "joined") for (const m of e.members) if (m.user_id !== me.id) announce(`${m.name} joined the swarm`);
    reload();
  });
  realtime.on("swarm.message_created", (e) => {
    if (e.message.conversation_id !== conversationId || e.message.swarm_id !== swarmId) return;
    typists.delete(e.message.sender_id);
    renderTyping();
    pull();
  });
  realtime.on("swarm.typing", (e) => {
    if (!ours(e) || e.swarm_id !== swarmId || e.user_id === me.id) return;
    if (e.typing) typists.set(e.user_id, { name: e.name, until: Date.now() + 6000 });
    else typists.delete(e.user_id);
    renderTyping();
  });
  realtime.on("swarm.presence", (e) => {
    if (!ours(e) || e.swarm_id !== swarmId || e.user_id === me.id) return;
    if (e.state === "gone") here.delete(e.user_id);
    else {
      const known = here.has(e.user_id);
      here.set(e.user_id, Date.now());
      if (!known) answerNewcomer(); // so the newcomer sees us at once, not at our next heartbeat
    }
    renderHere();
  });
  realtime.on("realtime.reload", reload);

  load().catch((error) => console.warn("swarm", error));
}
