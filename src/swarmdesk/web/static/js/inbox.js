// The inbox list: live rows, unread counts, saved views, bulk actions and j/k navigation.
import { api, fragment } from "./api.js";
import { $, $all, el, announce, isTyping, throttle, toast } from "./dom.js";
import { me, realtime, shortcutsEnabled } from "./session.js";

const main = $("#main");
const list = $("#conversation-list");
const query = main.dataset.query || "";
const firstPage = main.dataset.firstPage === "true";
// The view the list shows (a saved view's own, when one is open).
const view = main.dataset.view || "mine";

// --- counts in the side navigation ------------------------------------------------------------------
async function refreshCounts() {
  try {
    const counts = await api("GET", "/api/v1/inbox/counts");
    for (const [key, value] of Object.entries(counts.views || counts)) {
      const badge = document.querySelector(`[data-count="${key}"]`);
      if (!badge || typeof value !== "object") continue;
      const plus = value.capped ? "+" : "";
      badge.hidden = false;
      badge.textContent = value.unread ? `${value.unread}${plus}` : `${value.open}${plus}`;
      badge.classList.toggle("unread", value.unread > 0);
      badge.title = `${value.open}${plus} open, ${value.unread}${plus} unread`;
    }
  } catch (error) { console.warn("counts", error); }
}

// --- filters: a change applies at once ---------------------------------------------------------------
const filters = $("#filters");
for (const select of $all("select", filters)) select.addEventListener("change", () => filters.requestSubmit());

$("#save-view").addEventListener("click", () => {
  const existing = $("#save-view-form");
  if (existing) { existing.querySelector("input").focus(); return; }
  const name = el("input", { type: "text", required: true, maxlength: "100", "aria-label": "Name of the saved view" });
  const shared = el("input", { type: "checkbox" });
  const form = el("form", { id: "save-view-form", class: "toolbar" },
    name, el("label", {}, shared, " Share with the team"), el("button", { class: "btn small primary", type: "submit", text: "Save" }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(filters);
    const f = {};
    for (const key of ["status", "channel", "priority", "tag", "team_id"]) {
      const value = data.get(key);
      if (value) f[key] = key === "team_id" ? Number(value) : value;
    }
    if (f.status === "any") delete f.status;
    else if (f.status) f.status = [f.status];
    if (f.priority) f.priority = [f.priority];
    f.view = view;
    const body = { name: name.value.trim(), filters: f, shared: shared.checked };
    if (view !== "mentions") body.sort = data.get("sort") || "last_activity";
    try {
      const saved = await api("POST", "/api/v1/inbox/saved-views", body);
      location.assign(`/app?saved_view_id=${saved.id}`);
    } catch (error) { toast(error.message, "error"); }
  });
  filters.after(form);
  name.focus();
});

// --- selection and bulk actions -------------------------------------------------------------------------
const bulkbar = $("#bulkbar");
function selected() { return $all("input.select:checked", list).map((box) => Number(box.value)); }
function updateBulkbar() {
  const ids = selected();
  bulkbar.hidden = ids.length === 0;
  $("#bulk-count").textContent = String(ids.length);
  for (const row of $all(".conversation-row", list)) row.classList.toggle("selected", !!row.querySelector("input.select:checked"));
}
list.addEventListener("change", (event) => { if (event.target.matches("input.select")) updateBulkbar(); });

async function bulk(change) {
  const ids = selected();
  if (!ids.length) return;
  try {
    await api("POST", "/api/v1/inbox/bulk", { conversation_ids: ids, ...change });
    announce(`${ids.length} conversations updated`);
    toast(`${ids.length} conversation${ids.length === 1 ? "" : "s"} updated`);
    await reloadRows(true);
  } catch (error) { toast(error.message, "error"); }
}
$("#bulk-apply").addEventListener("click", () => {
  const change = {};
  const assignee = $("#bulk-assignee").value;
  if (assignee === "me") change.assignee_id = me.id;
  else if (assignee === "none") change.assignee_id = null;
  else if (assignee) change.assignee_id = Number(assignee);
  if ($("#bulk-team").value) change.team_id = Number($("#bulk-team").value);
  const tag = $("#bulk-tag").value.trim();
  if (tag) change.add_tags = [tag];
  if (Object.keys(change).length) bulk(change);
});
$("#bulk-resolve").addEventListener("click", () => bulk({ status: "resolved" }));
$("#bulk-clear").addEventListener("click", () => { for (const box of $all("input.select", list)) box.checked = false; updateBulkbar(); });

// --- live rows ---------------------------------------------------------------------------------------------
async function reloadRows(clearSelection = false) {
  const rows = await fragment(`/app/inbox/rows?${query}`);
  // Read the selection and focus only now: the agent may have ticked rows while this was loading.
  const keep = new Set(clearSelection ? [] : selected());
  const focusedId = document.activeElement && document.activeElement.closest(".conversation-row")
    ? document.activeElement.closest(".conversation-row").dataset.id : null;
  list.replaceChildren(rows);
  for (const box of $all("input.select", list)) if (keep.has(Number(box.value))) box.checked = true;
  if (focusedId) { const link = list.querySelector(`[data-id="${focusedId}"] a.open`); if (link) link.focus(); }
  updateBulkbar();
}
// Throttled, not debounced: on a busy account events never stop, and the list must still move.
const reloadList = throttle(() => {
  if (firstPage) reloadRows().catch((error) => console.warn(error));
  else $("#live-banner").hidden = false;
}, 1000);
const reloadCounts = throttle(refreshCounts, 3000);
function liveReload() { reloadList(); reloadCounts(); }
for (const type of ["conversation.created", "conversation.updated", "conversation.status_changed", "sla.updated",
                    "conversation.assigned", "message.created"]) {
  realtime.on(type, liveReload);
}
realtime.on("realtime.reload", liveReload);
realtime.on("realtime.ready", liveReload);  // whatever happened while the page loaded

// --- keyboard ------------------------------------------------------------------------------------------------
let cursor = -1;
function move(delta) {
  const rows = $all(".conversation-row", list);
  if (!rows.length) return;
  cursor = Math.max(0, Math.min(rows.length - 1, cursor + delta));
  rows[cursor].querySelector("a.open").focus();
}
document.addEventListener("keydown", (event) => {
  const t = event.target;
  if (isTyping(t)) return;
  if (event.metaKey || event.ctrlKey || event.altKey || !shortcutsEnabled()) return;
  if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
  const row = document.activeElement && document.activeElement.closest(".conversation-row");
  if (event.key === "j") { event.preventDefault(); move(1); }
  else if (event.key === "k") { event.preventDefault(); move(-1); }
  else if (event.key === "x" && row) { event.preventDefault(); const box = row.querySelector("input.select"); box.checked = !box.checked; updateBulkbar(); }
  else if (event.key === "o" && row) { event.preventDefault(); row.querySelector("a.open").click(); }
});
list.addEventListener("focusin", (event) => {
  const rows = $all(".conversation-row", list);
  const row = event.target.closest(".conversation-row");
  if (row) cursor = rows.indexOf(row);
});

refreshCounts();
