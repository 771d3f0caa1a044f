// The admin area: forms and buttons submit through the JSON API, a 4xx shows the problem's detail
// next to the form, success refreshes the section from the server. The inbox form is generated from
// the channel kind's config JSON schema; secrets are write-only and sent only when typed.
//
// Declarative forms: <form data-method data-path [data-done] [data-reset]> inside #admin-section;
// each named field is read by its data-type: text (default), bool, int, float, lines (one per line),
// list / int-list (checked boxes of one name), json (a textarea holding JSON), date-end. Dotted
// names build nested objects. Buttons with data-method/data-path[/data-body][/data-confirm] act too.
// Sections with their own module load only that module, which imports what it needs from here:
// this file must be loaded once (one set of listeners), so never beside it in a page.
import { api, ApiError } from "./api.js";
import { $, $all, el, announce, toast } from "./dom.js";

const SECTION = "admin-section";

// --- small helpers --------------------------------------------------------------------------------

export function setPath(target, path, value) {
  const keys = path.split(".");
  let node = target;
  for (const key of keys.slice(0, -1)) node = node[key] ??= {};
  node[keys[keys.length - 1]] = value;
}

export function getPath(target, path) {
  return path.split(".").reduce((node, key) => (node == null ? undefined : node[key]), target);
}

// End of the chosen day in the browser's time zone, as an instant the API accepts (with an offset).
function endOfDay(date) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(y, m - 1, d, 23, 59, 59).toISOString();
}

export function localizeTimes(root = document) {
  for (const node of $all("time[datetime]", root)) {
    const when = new Date(node.dateTime);
    if (Number.isNaN(when.getTime())) continue;
    node.title = node.textContent;
    node.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
}

export function readJson(id) {
  const node = document.getElementById(id);
  return node ? JSON.parse(node.textContent) : null;
}

// Stable JSON (sorted keys) to compare a field's value with the one the page was rendered with.
export function canonical(value) {
  if (value === undefined || value === null) return "null";
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export class FormProblem extends Error {}

// --- errors next to the form ----------------------------------------------------------------------

function errorBox(origin) {
  const holder = origin.closest("form, tr, section.team") || document.getElementById(SECTION);
  return $("[data-error]", holder) || $("#section-error");
}

export function clearErrors(scope) {
  for (const box of $all("[data-error]", scope)) { box.hidden = true; box.textContent = ""; }
  for (const field of $all("[aria-invalid=true]", scope)) field.removeAttribute("aria-invalid");
}

export function showError(origin, error) {
  const box = errorBox(origin);
  let text;
  if (error instanceof FormProblem) text = error.message;
  else if (error instanceof ApiError && error.status >= 400 && error.status < 500) text = error.message;
  else if (error instanceof ApiError) text = `The server could not do this (${error.status}). Try again in a moment.`;
  else text = "The server could not be reached. Check your connection and try again.";
  box.textContent = "";
  box.append(el("span", { text }));
  const form = origin.closest("form");
  const problems = (error instanceof ApiError && Array.isArray(error.body?.errors)) ? error.body.errors : [];
  if (problems.length) {
    const list = el("ul");
    for (const problem of problems.slice(0, 20)) {
      const loc = (problem.loc || []).filter((part) => part !== "body" && part !== "config");
      const msg = problem.msg || problem.type || "invalid";
      // The detail of a request validation error already lists every message: no second copy.
      if (!text.includes(msg)) list.append(el("li", { text: `${loc.join(" › ") || "request"}: ${msg}` }));
      const field = form && loc.length && Array.from(form.elements).find((f) => f.name === loc.join("."));
      if (field) field.setAttribute("aria-invalid", "true");
    }
    if (list.childElementCount) box.append(list);
  }
  box.hidden = false;
  announce(text);
}

// --- refreshing the section -----------------------------------------------------------------------

export async function refresh(focusedId = document.activeElement?.id) {
  const openDetails = $all(`#${SECTION} details[id][open]`).map((d) => d.id);
  let response;
  try {
    response = await fetch(location.pathname + location.search,
                           { credentials: "same-origin", headers: { accept: "text/html" } });
  } catch {
    location.reload();  // the change was made; show it the plain way
    return;
  }
  if (response.redirected || !response.ok) { location.reload(); return; }
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const fresh = doc.getElementById(SECTION);
  if (!fresh) { location.reload(); return; }
  document.getElementById(SECTION).replaceWith(document.adoptNode(fresh));
  for (const id of openDetails) { const d = document.getElementById(id); if (d) d.open = true; }
  localizeTimes(fresh);
  const again = focusedId && document.getElementById(focusedId);
  if (again && !again.closest("[hidden]")) again.focus();
  else if (!document.querySelector("dialog[open]")) $("#section-title")?.focus();
}

// --- dialogs: confirm and shown-once values -------------------------------------------------------

export function confirmAction(text, okLabel = "Confirm") {
  const dialog = $("#confirm-dialog");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("#confirm-ok").removeEventListener("click", ok);
      $("#confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("close", cancel);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const ok = () => done(true);
    const cancel = () => done(false);
    $("#confirm-ok").addEventListener("click", ok);
    $("#confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("close", cancel);
    dialog.showModal();
    $("#confirm-cancel").focus();
  });
}

let revealCount = 0;
function reveal(title, intro, items) {
  const dialog = $("#reveal-dialog");
  $("#reveal-title").textContent = title;
  $("#reveal-intro").textContent = intro;
  const box = $("#reveal-items");
  box.textContent = "";
  for (const item of items) {
    const id = `reveal-value-${++revealCount}`;
    box.append(el("div", { class: "reveal-item" },
      el("span", { class: "reveal-label", id: `${id}-label`, text: item.label }),
      el("code", { id, class: "reveal-value", text: item.value }),
      el("button", { class: "btn small", type: "button", "data-copy": id, text: "Copy",
                     "aria-label": `Copy ${item.label}` }),
      item.hint ? el("span", { class: "hint", text: item.hint }) : null));
  }
  dialog.showModal();
  $("button[data-copy]", box)?.focus();
}

$("#reveal-close").addEventListener("click", () => {
  $("#reveal-dialog").close();
  $("#reveal-items").textContent = "";  // shown once: not left in the page
});
$("#reveal-dialog").addEventListener("close", () => {
  $("#reveal-items").textContent = "";
  if (document.activeElement === document.body) $("#section-title")?.focus();
});

async function copyFrom(button) {
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const text = source.textContent;
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
    announce("Copied to the clipboard");
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    toast("Selected: press Ctrl+C (⌘C) to copy");
  }
}

// --- generic forms and buttons --------------------------------------------------------------------

export function collect(form) {
  const body = {};
  const lists = new Set();
  for (const field of form.elements) {
    if (!field.name || field.disabled) continue;
    const type = field.dataset.type || "text";
    if (type === "list" || type === "int-list") {
      if (!lists.has(field.name)) { lists.add(field.name); setPath(body, field.name, []); }
      if (field.checked) getPath(body, field.name).push(type === "int-list" ? Number(field.value) : field.value);
      continue;
    }
    if (field.type === "radio" && !field.checked) continue;
    let value;
    if (type === "bool") value = field.checked;
    else if (type === "int" || type === "float") { if (field.value === "") continue; value = Number(field.value); }
    else if (type === "json") {
      if (field.value.trim() === "") continue;
      try { value = JSON.parse(field.value); } catch (error) {
        field.setAttribute("aria-invalid", "true");
        const label = field.labels?.[0]?.textContent.replace("*", "").trim() || field.name;
        throw new FormProblem(`${label}: this is not valid JSON (${error.message}).`);
      }
    }
    else if (type === "lines") value = field.value.split("\n").map((line) => line.trim()).filter(Boolean);
    else if (type === "date-end") { if (!field.value) continue; value = endOfDay(field.value); }
    else value = field.type === "password" ? field.value : field.value.trim();
    setPath(body, field.name, value);
  }
  return body;
}

const REVEALS = {
  token: (r) => reveal("Your new API token", "Copy it now: it is not shown again. Anyone holding it acts as you.",
                       [{ label: `Token "${r.name}"`, value: r.token, hint: `Scopes: ${r.scopes.join(", ")}` }]),
  secret: (r) => reveal("Webhook subscription created",
                        "Copy the signing secret now: it is not shown again. Verify each delivery's webhook-signature with it.",
                        [{ label: "Signing secret", value: r.secret, hint: r.url }]),
};

export async function run(origin, method, path, body, { done, revealKind, form } = {}) {
  const scope = form || origin.closest("tr, section.team") || document.getElementById(SECTION);
  clearErrors(document.getElementById(SECTION) || scope);
  // Taken before the buttons are disabled (a disabled button loses focus): refresh puts it back.
  const focusedId = (origin.id && !form ? origin.id : document.activeElement?.id) || undefined;
  const busy = form ? $all("button[type=submit]", form) : [origin];
  for (const b of busy) { b.disabled = true; b.setAttribute("aria-busy", "true"); }
  try {
    const result = await api(method, path, body);
    if (revealKind && REVEALS[revealKind]) REVEALS[revealKind](result);
    if (form && form.hasAttribute("data-reset")) form.reset();
    await refresh(focusedId);
    if (done) { toast(done); announce(done); }
    return result;
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) showError(origin, error);
    return undefined;
  } finally {
    for (const b of busy) { if (b.isConnected) { b.disabled = false; b.removeAttribute("aria-busy"); } }
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.dataset.method || !form.closest(`#${SECTION}`)) return;
  event.preventDefault();
  let body;
  try {
    body = collect(form);
    for (const box of $all("fieldset.checks", form)) {
      const boxes = $all("input[type=checkbox][data-type=list]", box);
      if (boxes.length && !boxes.some((b) => b.checked)) {
        throw new FormProblem(`Choose at least one: ${$("legend", box)?.textContent.replace("*", "").trim()}.`);
      }
    }
  } catch (error) {
    showError(form, error);
    return;
  }
  run(form, form.dataset.method, form.dataset.path, body,
      { done: form.dataset.done, revealKind: form.dataset.reveal, form });
});

document.addEventListener("click", async (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  if (!button) return;
  if (button.dataset.copy) { copyFrom(button); return; }
  if (button.type !== "button" || !button.dataset.method || !button.closest(`#${SECTION}`)) return;
  if (button.dataset.confirm && !(await confirmAction(button.dataset.confirm, button.textContent.trim()))) return;
  const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
  run(button, button.dataset.method, button.dataset.path, body, { done: button.dataset.done });
});

// --- inboxes: the form generated from a channel's config schema -----------------------------------

const ACRONYMS = { sid: "SID", url: "URL", api: "API", id: "ID", ids: "IDs", imap: "IMAP", smtp: "SMTP",
                   ivr: "IVR", authserv: "authserv" };

function humanize(key) {
  const words = String(key).split("_").filter(Boolean).map((w) => ACRONYMS[w] || w);
  if (!words.length) return String(key);
  if (words[0] === words[0].toLowerCase()) words[0] = words[0][0].toUpperCase() + words[0].slice(1);
  return words.join(" ");
}

function deref(schema, root) {
  let current = schema || {};
  for (let guard = 0; current.$ref && guard < 32; guard++) {
    const { $ref, ...rest } = current;
    current = { ...(root.$defs?.[$ref.split("/").pop()] || {}), ...rest };
  }
  return current;
}

// One level of "X or null" unwrapped: the outer title, description, default and secret mark win.
function normalize(schema, root) {
  let current = deref(schema, root);
  let nullable = current.type === "null";
  const options = current.anyOf;
  if (Array.isArray(options)) {
    const real = options.filter((o) => o.type !== "null");
    nullable = nullable || real.length < options.length;
    if (real.length === 1) {
      const { anyOf, ...outer } = current;
      current = { ...deref(real[0], root), ...outer };
    }
  }
  if (Array.isArray(current.allOf) && current.allOf.length === 1) {
    const { allOf, ...outer } = current;
    current = { ...deref(allOf[0], root), ...outer };
  }
  return { schema: current, nullable };
}

const isSecret = (s) => s.secret === true || s.writeOnly === true || s.format === "password";

function kindOf(s, root) {
  if (s.anyOf || s.oneOf) return "json";
  if (s.type === "object" || s.properties) return s.properties ? "object" : "json";
  if (s.type === "array") {
    const items = normalize(s.items || {}, root).schema;
    return items.type === "string" && !items.enum && !items.anyOf ? "lines" : "json";
  }
  if (s.const !== undefined) return "const";
  if (s.type === "boolean") return "bool";
  if (s.type === "integer" || s.type === "number") return "number";
  if (Array.isArray(s.enum)) return "enum";
  if (s.type === "string") return isSecret(s) ? "secret" : "text";
  return "json";
}

function fieldLabel(text, required) {
  return el("span", {}, text, required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null);
}

function hintFor(id, ...texts) {
  const parts = texts.filter(Boolean).map((t) => t[0].toUpperCase() + t.slice(1));
  const text = parts.join(" ");
  return text ? el("span", { class: "hint", id: `${id}-hint`, text }) : null;
}

// A field: {node, read() -> value | undefined (leave out), secrets: [{path, label, set, typed()}]}.
function buildField(key, rawSchema, ctx) {
  const { schema: s, nullable } = normalize(rawSchema, ctx.root);
  const path = [...ctx.path, key];
  const name = path.join(".");
  const id = `${ctx.idBase}-${path.join("-")}`;
  const label = humanize(key);
  const required = ctx.required.has(key) && !nullable;
  const hasOriginal = ctx.value !== undefined && ctx.value !== null && key in ctx.value;
  const original = hasOriginal ? ctx.value[key] : undefined;
  const initial = ctx.mode === "edit" ? (hasOriginal ? original : s.default) : s.default;
  const kind = kindOf(s, ctx.root);
  const describedBy = (hint) => (hint ? `${id}-hint` : undefined);

  if (kind === "object") {
    const childRequired = new Set(s.required || []);
    const inner = el("fieldset", { class: "inner" });
    const secrets = [];
    const children = [];
    const objectValue = initial && typeof initial === "object" ? initial : undefined;
    for (const [childKey, childSchema] of Object.entries(s.properties)) {
      const child = buildField(childKey, childSchema, { ...ctx, path, required: childRequired, value: objectValue });
      children.push([childKey, child]);
      secrets.push(...child.secrets);
      inner.append(child.node);
    }
    const hint = hintFor(id, s.description);
    const group = el("fieldset", { class: "group", id, "aria-describedby": describedBy(hint) },
                     el("legend", { text: label }), hint);
    let toggle = null;
    if (nullable) {
      toggle = el("input", { type: "checkbox", id: `${id}-use`, "aria-controls": `${id}-fields` });
      toggle.checked = objectValue !== undefined;
      inner.id = `${id}-fields`;
      inner.disabled = !toggle.checked;
      toggle.addEventListener("change", () => { inner.disabled = !toggle.checked; });
      group.append(el("label", { class: "check", for: `${id}-use` }, toggle, ` Use ${label} settings`));
    }
    group.append(inner);
    const read = () => {
      if (toggle && !toggle.checked) return null;
      const out = {};
      for (const [childKey, child] of children) {
        const v = child.read();
        if (v !== undefined) out[childKey] = v;
      }
      return out;
    };
    return { node: group, read, secrets, label, kind };
  }

  if (kind === "const") return { node: el("span", { hidden: true }), read: () => s.const, secrets: [], label, kind };

  if (kind === "bool") {
    const input = el("input", { type: "checkbox", id, name });
    input.checked = Boolean(initial);
    const hint = hintFor(id, s.description);
    if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
    const node = el("div", { class: "field check-field" }, el("label", { class: "check", for: id }, input, ` ${label}`), hint);
    return { node, read: () => input.checked, secrets: [], label, kind };
  }

  let control;
  let read;
  const secrets = [];
  let stateHint = null;
  if (kind === "enum") {
    control = el("select", { id, name });
    if (nullable || (!required && s.default === undefined)) control.append(el("option", { value: "", text: "—" }));
    for (const option of s.enum) control.append(el("option", { value: String(option), text: String(option) }));
    control.value = initial == null ? "" : String(initial);
    read = () => (control.value === "" ? (nullable ? null : undefined) : s.enum.find((o) => String(o) === control.value));
  } else if (kind === "number") {
    control = el("input", { id, name, type: "number", inputmode: s.type === "integer" ? "numeric" : "decimal",
                            step: s.type === "integer" ? "1" : "any", min: s.minimum ?? s.exclusiveMinimum,
                            max: s.maximum ?? s.exclusiveMaximum });
    control.value = initial == null ? "" : String(initial);
    read = () => (control.value === "" ? (nullable ? null : undefined) : Number(control.value));
  } else if (kind === "lines") {
    control = el("textarea", { id, name, rows: "3", spellcheck: "false" });
    control.value = Array.isArray(initial) ? initial.join("\n") : "";
    read = () => {
      const lines = control.value.split("\n").map((line) => line.trim()).filter(Boolean);
      return lines.length || !nullable ? lines : null;
    };
  } else if (kind === "json") {
    control = el("textarea", { id, name, rows: "5", spellcheck: "false", class: "code" });
    control.value = initial === undefined || initial === null ? "" : JSON.stringify(initial, null, 2);
    read = () => {
      const text = control.value.trim();
      if (!text) return nullable ? null : undefined;
      try { return JSON.parse(text); } catch {
        throw new FormProblem(`${label}: this is not valid JSON (${humanize(ctx.path.join("_") || "config")}).`);
      }
    };
  } else if (kind === "secret") {
    const isSet = ctx.secretsSet.has(name);
    control = el("input", { id, name, type: "password", autocomplete: "new-password", spellcheck: "false",
                            maxlength: s.maxLength });
    if (ctx.mode === "edit") {
      stateHint = el("span", { class: `secret-state ${isSet ? "is-set" : "not-set"}`, id: `${id}-state`,
                               text: isSet ? "set — leave empty to keep" : "not set" });
    }
    read = () => (control.value === "" ? undefined : control.value);
    secrets.push({ path: name, label, set: isSet, typed: () => control.value !== "" });
  } else {
    control = el("input", { id, name, type: s.format === "uri" ? "url" : s.format === "email" ? "email" : "text",
                            maxlength: s.maxLength, spellcheck: "false", autocomplete: "off" });
    control.value = initial == null ? "" : String(initial);
    const allowsEmpty = !(s.minLength > 0) && !s.pattern && !s.format;
    read = () => {
      const text = control.value.trim();
      if (text) return text;
      return nullable ? null : allowsEmpty ? "" : undefined;
    };
  }
  if (kind !== "secret" && required && !(ctx.mode === "edit" && kind === "json")) control.required = true;
  if (kind === "secret" && required && ctx.mode === "create" && !/generated if omitted/i.test(s.description || "")) {
    control.required = true;
  }
  const hint = hintFor(id, kind === "lines" ? "One per line." : kind === "json" ? "JSON." : "", s.description);
  const described = [stateHint ? `${id}-state` : null, hint ? `${id}-hint` : null].filter(Boolean).join(" ");
  if (described) control.setAttribute("aria-describedby", described);
  const node = el("div", { class: `field-row kind-${kind}` },
                  el("label", { class: "field", for: id }, fieldLabel(label, control.required), control), stateHint, hint);
  return { node, read, secrets, label, kind };
}

let kindsCache = null;
async function channelKinds() {
  kindsCache ??= api("GET", "/api/v1/channel-kinds").then((list) => new Map(list.map((k) => [k.kind, k])))
    .catch((error) => { kindsCache = null; throw error; });
  return kindsCache;
}

function configForm(kind, mode, value, secretsSet, idBase) {
  const root = kind.config_schema;
  const required = new Set(root.required || []);
  const fields = [];
  const box = el("div", { class: "config-fields" });
  for (const [key, schema] of Object.entries(root.properties || {})) {
    // Mark top-level secrets the API names, even if a schema forgot the keyword.
    const s = kind.secret_fields.includes(key) ? { ...schema, secret: true } : schema;
    const field = buildField(key, s, { root, path: [], required, value, mode, secretsSet, idBase });
    fields.push([key, field]);
    box.append(field.node);
  }
  return { node: box, fields };
}

function readCreate(fields) {
  const config = {};
  for (const [key, field] of fields) {
    const v = field.read();
    if (v !== undefined) config[key] = v;
  }
  return config;
}

// Only what changed: the API merges the config one level deep, so an untouched block (and the secret
// inside it) is kept by leaving it out. A changed block is saved whole: its secrets must be typed again.
function readChanges(fields, original) {
  const config = {};
  for (const [key, field] of fields) {
    const v = field.read();
    if (v === undefined) continue;
    if (field.kind === "secret") { config[key] = v; continue; }
    const typed = field.secrets.some((x) => x.typed());
    if (!typed && canonical(v) === canonical(original[key])) continue;
    const missing = field.secrets.filter((x) => x.set && !x.typed());
    if (v !== null && missing.length) {
      const names = missing.map((x) => `the ${field.label} ${x.label.toLowerCase()}`).join(" and ");
      throw new FormProblem(`To change the ${field.label} settings, type ${names} again: `
                            + `the ${field.label} block is saved as a whole.`);
    }
    config[key] = v;
  }
  return config;
}

function editorShell(title, submitLabel) {
  const editor = $("#inbox-editor");
  editor.textContent = "";
  const heading = el("h2", { id: "inbox-editor-title", tabindex: "-1", text: title });
  const form = el("form", { id: "inbox-form", novalidate: false });
  const error = el("p", { class: "error", role: "alert", "data-error": "", hidden: true });
  const submit = el("button", { class: "btn primary", type: "submit", text: submitLabel });
  const cancel = el("button", { class: "btn", type: "button", text: "Cancel" });
  cancel.addEventListener("click", () => closeEditor());
  editor.append(heading, form);
  return { editor, heading, form, error, actions: el("div", { class: "actions" }, submit, cancel) };
}

let editorOpener = null;
function openEditor(opener) {
  editorOpener = opener;
  $("#inbox-editor").hidden = false;
  $("#new-inbox").setAttribute("aria-expanded", String(opener?.id === "new-inbox"));
}

function closeEditor() {
  const editor = $("#inbox-editor");
  editor.hidden = true;
  editor.textContent = "";
  $("#new-inbox")?.setAttribute("aria-expanded", "false");
  editorOpener?.focus();
}

function sessionsField(idBase, checked) {
  const id = `${idBase}-sessions`;
  const input = el("input", { type: "checkbox", id, name: "settings.allow_customer_sessions",
                              "aria-describedby": `${id}-hint` });
  input.checked = Boolean(checked);
  const hint = $("#inbox-editor").dataset.sessionsHint || "";
  return { input, node: el("div", { class: "field check-field" },
    el("label", { class: "check", for: id }, input, " Allow customer sessions"),
    el("span", { class: "hint", id: `${id}-hint`, text: hint && `${hint[0].toUpperCase()}${hint.slice(1)}.` })) };
}

function createdItems(created, meta) {
  const items = [];
  if (meta?.connect === "webhook") {
    items.push({ label: "Webhook URL", value: created.webhook_url, hint: "Paste it into the vendor's console." });
  }
  if (meta?.connect === "widget") {
    const base = $("#inbox-editor").dataset.baseUrl;
    items.push({ label: "Widget snippet", value: `<script src="${base}/widget/${created.public_key}.js" async></script>`,
                 hint: "Paste it before </body> on every page of your site." });
  }
  for (const [key, value] of Object.entries(created.generated_secrets || {})) {
    items.push({ label: humanize(key), value, hint: "Generated for you: shown once, store it now." });
  }
  return items;
}

async function newInbox(opener) {
  const meta = new Map((readJson("kind-data") || []).map((k) => [k.kind, k]));
  openEditor(opener);
  const { heading, form, error, actions } = editorShell("New inbox", "Create inbox");
  const name = el("input", { id: "inbox-new-name", name: "name", type: "text", required: true, maxlength: "200",
                             autocomplete: "off" });
  const picker = el("select", { id: "inbox-new-kind", name: "channel_kind", required: true },
                    el("option", { value: "", text: "Choose a channel…" }),
                    ...Array.from(meta.values()).map((k) => el("option", { value: k.kind, text: k.title })));
  const configBox = el("div", { class: "config", "aria-live": "polite" },
                       el("p", { class: "hint", text: "Choose a channel to see its settings." }));
  const sessions = sessionsField("inbox-new", false);
  form.append(
    el("div", { class: "grid" },
       el("label", { class: "field", for: "inbox-new-name" }, fieldLabel("Name", true), name),
       el("label", { class: "field", for: "inbox-new-kind" }, fieldLabel("Channel", true), picker)),
    configBox, sessions.node, error, actions);
  let current = null;
  picker.addEventListener("change", async () => {
    current = null;
    configBox.textContent = "";
    if (!picker.value) return;
    try {
      const kind = (await channelKinds()).get(picker.value);
      current = configForm(kind, "create", undefined, new Set(), "inbox-new");
      configBox.append(el("h3", { text: `${kind.title} settings` }), current.node);
    } catch (problem) { showError(form, problem); }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      if (!current) throw new FormProblem("Choose a channel first.");
      body = { name: name.value.trim(), channel_kind: picker.value, config: readCreate(current.fields),
               settings: { allow_customer_sessions: sessions.input.checked } };
    } catch (problem) { showError(form, problem); return; }
    const submit = $("button[type=submit]", form);
    submit.disabled = true;
    try {
      const created = await api("POST", "/api/v1/inboxes", body);
      editorOpener = null;
      closeEditor();
      await refresh();
      toast("Inbox created");
      const items = createdItems(created, meta.get(created.channel_kind));
      if (items.length) {
        reveal(`Inbox "${created.name}" created`,
               "Connect it now. Generated secrets are shown only this once; the webhook URL stays in the list.", items);
      }
    } catch (problem) {
      showError(form, problem);
    } finally { if (submit.isConnected) submit.disabled = false; }
  });
  name.focus();
  heading.scrollIntoView({ block: "nearest" });
}

async function editInbox(opener, inboxId) {
  const inbox = (readJson("inbox-data") || []).find((i) => i.id === inboxId);
  if (!inbox) return;
  openEditor(opener);
  const { heading, form, error, actions } = editorShell(`Edit ${inbox.name}`, "Save changes");
  const idBase = `inbox-${inbox.id}-edit`;
  const name = el("input", { id: `${idBase}-name`, name: "name", type: "text", required: true, maxlength: "200",
                             autocomplete: "off" });
  name.value = inbox.name;
  const active = el("input", { id: `${idBase}-active`, name: "is_active", type: "checkbox" });
  active.checked = inbox.is_active;
  const sessions = sessionsField(idBase, inbox.settings?.allow_customer_sessions);
  const configBox = el("div", { class: "config" }, el("p", { class: "hint", text: "Loading the channel's settings…" }));
  form.append(
    el("p", { class: "hint" }, "Channel: ", el("strong", { text: inbox.kind_title })),
    el("div", { class: "grid" },
       el("label", { class: "field", for: `${idBase}-name` }, fieldLabel("Name", true), name),
       el("div", { class: "field check-field" }, el("label", { class: "check", for: `${idBase}-active` }, active,
                                                    " Active (receives and sends messages)"))),
    configBox, sessions.node, error, actions);
  let current = null;
  try {
    const kind = (await channelKinds()).get(inbox.channel_kind);
    current = configForm(kind, "edit", inbox.config, new Set(inbox.secrets_set), idBase);
    configBox.textContent = "";
    configBox.append(el("h3", { text: `${kind.title} settings` }), current.node);
  } catch (problem) { showError(form, problem); }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const body = {};
    try {
      if (!current) throw new FormProblem("The channel's settings could not be loaded.");
      if (name.value.trim() !== inbox.name) body.name = name.value.trim();
      if (active.checked !== inbox.is_active) body.is_active = active.checked;
      if (sessions.input.checked !== Boolean(inbox.settings?.allow_customer_sessions)) {
        body.settings = { allow_customer_sessions: sessions.input.checked };
      }
      const config = readChanges(current.fields, inbox.config || {});
      if (Object.keys(config).length) body.config = config;
    } catch (problem) { showError(form, problem); return; }
    if (!Object.keys(body).length) { toast("Nothing changed"); return; }
    const submit = $("button[type=submit]", form);
    submit.disabled = true;
    try {
      await api("PATCH", `/api/v1/inboxes/${inbox.id}`, body);
      editorOpener = null;
      closeEditor();
      await refresh();
      toast("Inbox saved");
      announce("Inbox saved");
    } catch (problem) {
      showError(form, problem);
    } finally { if (submit.isConnected) submit.disabled = false; }
  });
  heading.focus();
  heading.scrollIntoView({ block: "nearest" });
}

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  if (!button) return;
  if (button.id === "new-inbox") newInbox(button);
  else if (button.dataset.editInbox) editInbox(button, Number(button.dataset.editInbox));
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("#inbox-editor")?.hidden && !document.querySelector("dialog[open]")
      && $("#inbox-editor").contains(document.activeElement)) {
    closeEditor();
  }
});

localizeTimes();
