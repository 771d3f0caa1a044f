// Automation rules and macros in the admin area. The rule and macro forms are built from the JSON
// schema of the API's create model, embedded in the page (#builder-data): a discriminated union on
// "type" becomes a choice of type whose fields appear below it, a list of them becomes rows (add,
// remove, move), a self-nesting {all|any: [...]} object becomes a condition group, arrays of enums
// become checkboxes, and fields naming the account's objects (inbox_ids, team_id, user_ids, ...)
// become selects or checkboxes of those objects. A new condition or action type in the schemas
// therefore appears here by itself. A 422 is shown next to the form and on the row it points at
// (errors[].loc). Each rule's versions (with a line diff) and its execution log are read from the API
// when opened. Loads admin.js (through the import) for the generic buttons: pause, delete.
import { api, ApiError } from "./api.js";
import { $, $all, el, announce, toast } from "./dom.js";
import { canonical, clearErrors, FormProblem, localizeTimes, readJson, refresh } from "./admin.js";

const SECTION = "admin-section";
const LOG_PAGE = 20;
const DATA = readJson("builder-data") || {};
const ROOT = DATA.schema || {};
const REFS = DATA.refs || {};
const LABELS = DATA.labels || {};
const LIMITS = DATA.limits || {};
const USER_NAMES = DATA.user_names || {};

// --- words ----------------------------------------------------------------------------------------

const ACRONYMS = { id: "ID", ids: "IDs", url: "URL", sla: "SLA", api: "API" };
const TYPE_LABELS = {
  event: "When something happens", status_for: "When a conversation stays in a status",
  waiting_for: "When the customer has been waiting",
  text_contains: "Text contains", text_matches: "Text matches a pattern", channel: "Channel", inbox: "Inbox",
  customer_attribute: "Customer attribute", organization: "Organization", time_of_day: "Time of day", tag: "Tags",
  status: "Status", priority: "Priority", assignee: "Assignee", team: "Team",
  assign: "Assign to a user", set_team: "Set the team", set_priority: "Set the priority", add_tags: "Add tags",
  remove_tags: "Remove tags", reply_template: "Reply with a canned response", add_note: "Add an internal note",
  notify: "Notify people", call_webhook: "Call a webhook", start_swarm: "Start a swarm",
  set_required_skills: "Require skills", snooze: "Snooze", resolve: "Resolve",
};
const FIELD_LABELS = {
  any: "Any of these texts", kinds: "Channels", inbox_ids: "Inboxes", user_ids: "Users", team_ids: "Teams",
  invite_user_ids: "Invite", user_id: "User", team_id: "Team", canned_response_id: "Canned response",
  subscription_id: "Webhook subscription", skill_id: "Skill", min_proficiency: "Minimum proficiency",
  case_sensitive: "Case sensitive", notify_assignee: "Also notify the assignee", op: "Test", field: "Look in",
  max_runs_per_hour: "Runs per hour at most", enabled: "Active", position: "Position in the run order",
  personal: "Personal (only you see and use it)", macro_id: "Macro",
};
const ENUM_LABELS = {
  eq: "equals", ne: "does not equal", in: "is one of", not_in: "is none of", contains: "contains", exists: "is set",
  not_exists: "is not set", gt: "greater than", gte: "at least", lt: "less than", lte: "at most",
  set: "someone / some team", unset: "nobody / no team", message_or_subject: "message or subject",
};
const MODE_LABELS = { all: "All of these hold (and)", any: "At least one of these holds (or)" };

function humanize(key) {
  const words = String(key).split("_").filter(Boolean).map((w) => ACRONYMS[w] || w);
  if (!words.length) return String(key);
  words[0] = words[0][0].toUpperCase() + words[0].slice(1);
  return words.join(" ");
}

const typeLabel = (type) => TYPE_LABELS[type] || humanize(type);
const fieldLabel = (key, owner) => (key === "ids" && owner === "organization" ? "Organizations"
  : FIELD_LABELS[key] || humanize(key));
const sentence = (text) => (text ? text[0].toUpperCase() + text.slice(1) : "");
const enumText = (key, value) => LABELS[key]?.[value] || (ENUM_LABELS[value] ? `${ENUM_LABELS[value]} (${value})` : String(value));

// Which of the account's lists an id field names: by its name (team_id, invite_user_ids...), or by
// the type that owns it (an organization condition's "ids", a channel condition's "kinds").
const REF_RULES = [["user", "users"], ["team", "teams"], ["inbox", "inboxes"], ["canned_response", "canned_responses"],
                   ["subscription", "webhook_subscriptions"], ["skill", "skills"], ["macro", "macros"],
                   ["organization", "organizations"]];
function refKind(key, owner) {
  if (key === "ids" && owner === "organization") return "organizations";
  if (key === "kinds" && owner === "channel") return "channel_kinds";
  for (const [stem, kind] of REF_RULES) {
    if ([`${stem}_id`, `${stem}_ids`].includes(key) || key.endsWith(`_${stem}_id`) || key.endsWith(`_${stem}_ids`)) {
      return kind;
    }
  }
  return null;
}

// --- schema helpers -------------------------------------------------------------------------------

const refName = (ref) => ref.split("/").pop();

function deref(schema) {
  let current = schema || {};
  let name = null;
  for (let guard = 0; current.$ref && guard < 32; guard++) {
    const { $ref, ...rest } = current;
    name = refName($ref);
    current = { ...(ROOT.$defs?.[name] || {}), ...rest };
  }
  return { schema: current, name };
}

// "X or null" unwrapped one level: the outer description and default win.
function normalize(raw) {
  let { schema: s, name } = deref(raw);
  let nullable = s.type === "null";
  if (Array.isArray(s.anyOf)) {
    const real = s.anyOf.filter((o) => o.type !== "null");
    nullable = nullable || real.length < s.anyOf.length;
    if (real.length === 1) {
      const { anyOf, ...outer } = s;
      const inner = deref(real[0]);
      s = { ...inner.schema, ...outer };
      name = inner.name || name;
    } else if (real.length < s.anyOf.length) {
      s = { ...s, anyOf: real };
    }
  }
  return { s, nullable, name };
}

// The options of a union discriminated by a constant "type": [{type, schema, name}], else null.
function variantsOf(s) {
  const list = s.oneOf || s.anyOf;
  if (!Array.isArray(list) || !list.length) return null;
  const out = [];
  for (const option of list) {
    const { schema, name } = deref(option);
    const type = schema.properties?.type?.const;
    if (type === undefined) return null;
    out.push({ type, schema, name });
  }
  return out;
}

// A condition group: an object whose every property is a list of items, one of which is the group itself.
function groupInfo(s, name) {
  if (!name || !s.properties) return null;
  const modes = Object.keys(s.properties);
  let items = null;
  for (const mode of modes) {
    const { s: prop } = normalize(s.properties[mode]);
    const options = prop.type === "array" ? (prop.items?.oneOf || prop.items?.anyOf) : null;
    if (!options || !options.some((o) => o.$ref && refName(o.$ref) === name)) return null;
    items ??= { options: options.filter((o) => !(o.$ref && refName(o.$ref) === name)), max: prop.maxItems };
  }
  const variants = variantsOf({ oneOf: items.options });
  return variants && modes.length ? { modes, variants, max: items.max, name } : null;
}

function isScalarAnyOf(s) {
  return Array.isArray(s.anyOf) && s.anyOf.every((o) => ["string", "integer", "number", "boolean", "array"].includes(o.type));
}

// --- widgets: {node, read(), locate(loc) -> {control, label} | null, control} ---------------------

let counter = 0;
const uid = () => `ab-${++counter}`;

class Problem extends FormProblem {
  constructor(message, control) { super(message); this.control = control; }
}

function hintNode(id, text) {
  return text ? el("span", { class: "hint", id: `${id}-hint`, text: sentence(text) }) : null;
}

function labelText(text, required) {
  return el("span", {}, text, required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null);
}

// A labelled control: the label, the control and its hint side by side (a label wrapping a select
// would take the options' text into its name, and a hint inside it would be read as part of it).
function fieldBox(id, label, required, control, hint, extra = "") {
  return el("div", { class: `af${extra}` }, el("label", { for: id }, labelText(label, required)), control, hint);
}

function plainWidget(node, control, read, label) {
  return { node, control, read, label, locate: () => ({ control, label }) };
}

function checkList(key, label, options, selected, hint, { numeric = false, required = false } = {}) {
  const id = uid();
  const chosen = new Set((selected || []).map(String));
  const boxes = options.map((o) => {
    const input = el("input", { type: "checkbox", value: String(o.id), id: uid() });
    input.checked = chosen.has(String(o.id));
    return { input, node: el("label", { class: "check", for: input.id }, input, ` ${o.label}`) };
  });
  for (const value of chosen) {  // a saved id the lists no longer offer stays visible (and chosen)
    if (!options.some((o) => String(o.id) === value)) {
      const input = el("input", { type: "checkbox", value, id: uid() });
      input.checked = true;
      boxes.push({ input, node: el("label", { class: "check", for: input.id }, input, ` #${value} (not found)`) });
    }
  }
  const hintEl = hintNode(id, hint);
  const fieldset = el("fieldset", { class: `checks choice-list${boxes.length > 8 ? " long" : ""}`, id,
                                    "aria-describedby": hintEl ? `${id}-hint` : undefined },
                      el("legend", {}, labelText(label, required)), ...boxes.map((b) => b.node), hintEl);
  if (!boxes.length) fieldset.append(el("p", { class: "hint", text: "None in this account yet." }));
  const read = () => boxes.filter((b) => b.input.checked).map((b) => (numeric ? Number(b.input.value) : b.input.value));
  return plainWidget(fieldset, boxes[0]?.input || fieldset, read, label);
}

function scalarField(key, raw, value, ctx) {
  const { s, nullable } = normalize(raw);
  const label = fieldLabel(key, ctx.owner);
  const required = ctx.required.has(key) && !nullable;
  const initial = value !== undefined ? value : s.default;
  const description = s.description;
  const id = uid();
  const kind = refKind(key, ctx.owner);

  if (s.const !== undefined) return { node: null, control: null, label, read: () => s.const, locate: () => null };

  if (s.type === "array") {
    const { s: items } = normalize(s.items || {});
    const emptyValue = () => (nullable ? null : []);
    if (kind && REFS[kind]) {
      const w = checkList(key, label, REFS[kind], initial, description,
                          { numeric: items.type === "integer", required: s.minItems > 0 });
      const read = w.read;
      w.read = () => { const v = read(); return v.length ? v : emptyValue(); };
      return w;
    }
    if (Array.isArray(items.enum)) {
      const w = checkList(key, label, items.enum.map((v) => ({ id: v, label: enumText(key, v) })), initial,
                          description, { required: s.minItems > 0 });
      const read = w.read;
      w.read = () => { const v = read(); return v.length ? v : emptyValue(); };
      return w;
    }
    if (items.type === "string" || items.type === "integer") {
      const area = el("textarea", { id, rows: "2", spellcheck: "false" });
      area.value = Array.isArray(initial) ? initial.join("\n") : "";
      const hint = hintNode(id, ["One per line.", description].filter(Boolean).join(" "));
      area.setAttribute("aria-describedby", `${id}-hint`);
      const read = () => {
        const lines = area.value.split("\n").map((line) => line.trim()).filter(Boolean);
        if (!lines.length) return emptyValue();
        return items.type === "integer" ? lines.map((line) => (/^\d+$/.test(line) ? Number(line) : line)) : lines;
      };
      return plainWidget(fieldBox(id, label, s.minItems > 0, area, hint, " wide"), area, read, label);
    }
  }

  if (s.type === "boolean") {
    const input = el("input", { type: "checkbox", id });
    input.checked = Boolean(initial);
    const hint = hintNode(id, description?.replace(/^true:\s*/i, ""));  // "true: it holds when..." -> "It holds when..."
    if (hint) input.setAttribute("aria-describedby", `${id}-hint`);
    return plainWidget(el("div", { class: "field check-field" }, el("label", { class: "check", for: id }, input, ` ${label}`), hint),
                       input, () => input.checked, label);
  }

  let control;
  let read;
  let extraHint = "";
  const options = kind && REFS[kind] && (s.type === "integer" || s.type === "string") ? REFS[kind]
    : Array.isArray(s.enum) ? s.enum.map((v) => ({ id: v, label: enumText(key, v) })) : null;
  if (options) {
    control = el("select", { id });
    const blank = nullable ? (kind ? "None" : "—") : "Choose…";
    if (nullable || initial === undefined || initial === null) control.append(el("option", { value: "", text: blank }));
    for (const o of options) control.append(el("option", { value: String(o.id), text: o.label }));
    if (initial !== undefined && initial !== null && !options.some((o) => String(o.id) === String(initial))) {
      control.append(el("option", { value: String(initial), text: `#${initial} (not found)` }));
    }
    control.value = initial === undefined || initial === null ? "" : String(initial);
    read = () => {
      if (control.value === "") return nullable ? null : undefined;
      return s.type === "integer" ? Number(control.value) : control.value;
    };
  } else if (s.type === "integer" || s.type === "number") {
    control = el("input", { id, type: "number", inputmode: s.type === "integer" ? "numeric" : "decimal",
                            step: s.type === "integer" ? "1" : "any", min: s.minimum, max: s.maximum });
    control.value = initial === undefined || initial === null ? "" : String(initial);
    read = () => (control.value.trim() === "" ? (nullable ? null : undefined) : Number(control.value));
  } else if (isScalarAnyOf(s)) {
    // A value of several types (a customer attribute's): JSON when it reads as JSON (a number,
    // true/false, a list, a "quoted" text), else the text itself.
    const looksJson = (text) => /^(-?\d+(\.\d+)?|true|false|\[.*\]|".*")$/s.test(text);
    control = el("input", { id, type: "text", spellcheck: "false", autocomplete: "off" });
    control.value = initial === undefined || initial === null ? ""
      : typeof initial === "string" && !looksJson(initial.trim()) ? initial : JSON.stringify(initial);
    read = () => {
      const text = control.value.trim();
      if (!text) return nullable ? null : undefined;
      if (looksJson(text)) {
        try { return JSON.parse(text); } catch { /* plain text */ }
      }
      return text;
    };
    extraHint = 'Several values as a JSON list: ["gold", "platinum"]; "18" in quotes is text, 18 a number.';
  } else if (s.type === "string") {
    const long = (s.maxLength || 0) >= 1000;
    control = long ? el("textarea", { id, rows: "2", maxlength: s.maxLength })
      : el("input", { id, type: "text", maxlength: s.maxLength, spellcheck: "false", autocomplete: "off",
                      placeholder: s.pattern && /\[0-5\]/.test(s.pattern) ? "HH:MM" : undefined });
    control.value = initial === undefined || initial === null ? "" : String(initial);
    const allowsEmpty = !(s.minLength > 0) && !s.pattern;
    read = () => {
      const text = control.value.trim();
      if (text) return text;
      if (nullable) return null;
      return allowsEmpty && !required ? "" : undefined;
    };
  } else {
    control = el("textarea", { id, rows: "3", spellcheck: "false", class: "code" });
    control.value = initial === undefined || initial === null ? "" : JSON.stringify(initial, null, 2);
    read = () => {
      const text = control.value.trim();
      if (!text) return nullable ? null : undefined;
      try { return JSON.parse(text); } catch { throw new Problem(`${label}: this is not valid JSON.`, control); }
    };
  }
  if (required) control.required = true;
  const hint = hintNode(id, [description && sentence(description), extraHint].filter(Boolean).join(". "));
  if (hint) control.setAttribute("aria-describedby", `${id}-hint`);
  const wide = control.tagName === "TEXTAREA";
  return plainWidget(fieldBox(id, label, required, control, hint, wide ? " wide" : ""), control, read, label);
}

// A field of any kind, by its schema.
function fieldWidget(key, raw, value, ctx) {
  const { s, nullable, name } = normalize(raw);
  const group = groupInfo(s, name);
  if (group) return groupWidget(group, value, { ...ctx, depth: 1 }, { label: fieldLabel(key, ctx.owner) });
  const variants = variantsOf(s);
  if (variants) {
    return variantWidget(variants, value, ctx, { label: fieldLabel(key, ctx.owner), style: variants.length <= 4 ? "radios" : "select",
                                                 description: s.description });
  }
  if (s.type === "array") {
    const { s: items } = normalize(s.items || {});
    const itemVariants = variantsOf(items);
    const label = fieldLabel(key, ctx.owner);
    if (itemVariants) {
      const noun = label.replace(/s$/, "");
      return listWidget(value, ctx, { label, noun, min: s.minItems, max: s.maxItems, description: s.description,
                                      make: (v, rowCtx) => variantWidget(itemVariants, v, rowCtx, { label: "Type", style: "select" }) });
    }
    if (items.type === "object" && items.properties) {
      const noun = label.replace(/s$/, "");
      return listWidget(value, ctx, { label, noun, min: s.minItems, max: s.maxItems, description: s.description,
                                      make: (v, rowCtx) => objectFields(items, v, rowCtx) });
    }
  }
  if (s.type === "object" && s.properties) return objectWidget(key, s, nullable, value, ctx);
  return scalarField(key, raw, value, ctx);
}

// The fields of an object (the "type" constant kept out of sight), booleans last.
function objectFields(s, value, ctx, { skip = [] } = {}) {
  const required = new Set(s.required || []);
  const entries = Object.entries(s.properties || {}).filter(([k]) => !skip.includes(k));
  const isBool = ([, raw]) => normalize(raw).s.type === "boolean";
  entries.sort((a, b) => Number(isBool(a)) - Number(isBool(b)));
  const box = el("div", { class: "fields" });
  const children = [];
  for (const [key, raw] of entries) {
    const child = fieldWidget(key, raw, value && typeof value === "object" ? value[key] : undefined,
                              { ...ctx, required });
    children.push([key, child]);
    if (child.node) box.append(child.node);
  }
  return {
    node: box, control: children.find(([, c]) => c.control)?.[1].control || null, label: ctx.owner,
    read: () => {
      const out = {};
      for (const [key, child] of children) {
        const v = child.read();
        if (v !== undefined) out[key] = v;
      }
      return out;
    },
    locate: (loc) => {
      const found = children.find(([key]) => key === loc[0]);
      return found ? found[1].locate(loc.slice(1)) : null;
    },
  };
}

function objectWidget(key, s, nullable, value, ctx) {
  const id = uid();
  const label = fieldLabel(key, ctx.owner);
  const inner = objectFields(s, value, { ...ctx, owner: ctx.owner });
  const fieldset = el("fieldset", { class: "group", id }, el("legend", { text: label }),
                      hintNode(id, s.description));
  let toggle = null;
  const wrap = el("fieldset", { class: "inner" }, inner.node);
  if (nullable) {
    toggle = el("input", { type: "checkbox", id: `${id}-use` });
    toggle.checked = value !== undefined && value !== null;
    wrap.disabled = !toggle.checked;
    toggle.addEventListener("change", () => { wrap.disabled = !toggle.checked; });
    fieldset.append(el("label", { class: "check", for: `${id}-use` }, toggle, ` Test the ${label.toLowerCase()}`));
  }
  fieldset.append(wrap);
  return {
    node: fieldset, control: toggle || inner.control, label,
    read: () => (toggle && !toggle.checked ? null : inner.read()),
    locate: (loc) => inner.locate(loc) || { control: toggle || fieldset, label },
  };
}

// One of several types: a choice (radios or a select), and the chosen type's fields below it.
function variantWidget(variants, value, ctx, { label, style, description }) {
  const id = uid();
  let current = variants.find((v) => v.type === value?.type) || (style === "radios" && !value ? variants[0] : null);
  const fieldsBox = el("div", { class: "variant-fields" });
  const typeHint = el("p", { class: "hint variant-hint", id: `${id}-hint` });
  let fields = null;
  const remembered = new Map();  // what was typed for a type, kept while switching back and forth
  const show = (initial) => {
    fieldsBox.textContent = "";
    typeHint.textContent = current?.schema.description ? sentence(current.schema.description.replace(/``/g, "")) : "";
    typeHint.hidden = !typeHint.textContent;
    fields = current ? objectFields(current.schema, initial, { ...ctx, owner: current.type }, { skip: ["type"] }) : null;
    if (fields) fieldsBox.append(fields.node);
  };
  let chooser;
  let choiceControl;
  if (style === "radios") {
    const radios = variants.map((v) => {
      const input = el("input", { type: "radio", name: id, value: v.type, id: uid() });
      input.checked = v === current;
      return el("label", { class: "check", for: input.id }, input, ` ${typeLabel(v.type)}`);
    });
    chooser = el("div", { class: "variant-choice", role: "radiogroup", "aria-label": label }, ...radios);
    choiceControl = () => $("input:checked", chooser) || $("input", chooser);
  } else {
    const select = el("select", { id: `${id}-type`, "aria-describedby": `${id}-hint` },
                      el("option", { value: "", text: "Choose…" }),
                      ...variants.map((v) => el("option", { value: v.type, text: typeLabel(v.type) })));
    select.value = current?.type || "";
    chooser = fieldBox(`${id}-type`, label, true, select, null, " type-field");
    choiceControl = () => select;
  }
  chooser.addEventListener("change", (event) => {
    if (current && fields) remembered.set(current.type, safeRead(fields));
    current = variants.find((v) => v.type === event.target.value) || null;
    show(current ? remembered.get(current.type) : undefined);
  });
  show(current ? value : undefined);
  const node = style === "radios"
    ? el("fieldset", { class: "variant", id }, el("legend", { text: label }), hintNode(`${id}-d`, description), chooser, typeHint, fieldsBox)
    : el("div", { class: "variant", id }, chooser, typeHint, fieldsBox);
  const name = () => ctx.rowLabel?.() || label;
  return {
    node, label, get control() { return choiceControl(); },
    read: () => {
      if (!current) throw new Problem(`${name()}: choose a type.`, choiceControl());
      return { type: current.type, ...fields.read() };
    },
    // An error about the row itself (no field named): the choice of type, labelled by the row.
    locate: (loc) => {
      const rest = current && loc[0] === current.type ? loc.slice(1) : loc;
      return (rest.length && fields?.locate(rest)) || { control: choiceControl(), label: ctx.rowLabel ? null : label };
    },
  };
}

function safeRead(widget) {
  try { return widget.read(); } catch { return undefined; }
}

function rowButton(text, label, onClick, extra = "") {
  return el("button", { class: `btn small${extra}`, type: "button", text, "aria-label": label || undefined, onclick: onClick });
}

// What a row's error line says: the row, then the field inside it (if the error names one).
function inRow(row, found) {
  if (found.box) return found;  // a list inside the row has its own rows and lines
  return { ...found, box: row.error, label: [row.title.textContent, found.label].filter(Boolean).join(" › ") };
}

// Rows of one kind of item: add (up to max), remove, move up and down; each row has its own error line.
function listWidget(value, ctx, { label, noun, min = 0, max = Infinity, description, make }) {
  const id = uid();
  const rows = [];
  const list = el("ol", { class: "rows" });
  const addButton = el("button", { class: "btn small", type: "button", text: `Add ${noun.toLowerCase()}` });
  const count = el("span", { class: "hint" });
  const fieldset = el("fieldset", { class: "list", id }, el("legend", {}, labelText(label, min > 0)),
                      hintNode(id, description), list, el("div", { class: "actions" }, addButton, count));
  const renumber = () => {
    rows.forEach((row, i) => {
      row.title.textContent = `${noun} ${i + 1}`;
      row.up.disabled = i === 0;
      row.down.disabled = i === rows.length - 1;
      row.up.setAttribute("aria-label", `Move ${noun.toLowerCase()} ${i + 1} up`);
      row.down.setAttribute("aria-label", `Move ${noun.toLowerCase()} ${i + 1} down`);
      row.remove.setAttribute("aria-label", `Remove ${noun.toLowerCase()} ${i + 1}`);
    });
    addButton.disabled = rows.length >= max;
    count.textContent = Number.isFinite(max) ? `${rows.length} of at most ${max}` : "";
  };
  const add = (v, focus) => {
    const title = el("legend", {});
    const row = { title };
    row.widget = make(v, { ...ctx, rowLabel: () => title.textContent });
    row.error = el("p", { class: "error row-error", "data-row-error": "", hidden: true });
    row.up = rowButton("↑", "", () => move(row, -1));
    row.down = rowButton("↓", "", () => move(row, 1));
    row.remove = rowButton("Remove", "", () => {
      rows.splice(rows.indexOf(row), 1);
      row.li.remove();
      renumber();
      addButton.focus();
    }, " danger");
    row.li = el("li", { class: "row" }, el("fieldset", { class: "row-box" }, title,
      el("div", { class: "row-tools" }, row.up, row.down, row.remove), row.widget.node, row.error));
    rows.push(row);
    list.append(row.li);
    renumber();
    if (focus) row.widget.control?.focus();
  };
  const move = (row, step) => {
    const i = rows.indexOf(row);
    const j = i + step;
    if (j < 0 || j >= rows.length) return;
    [rows[i], rows[j]] = [rows[j], rows[i]];
    if (step < 0) list.insertBefore(row.li, rows[i].li); else list.insertBefore(rows[i].li, row.li);
    renumber();
    (step < 0 ? row.up : row.down).focus();
  };
  addButton.addEventListener("click", () => add(undefined, true));
  for (const v of Array.isArray(value) ? value : []) add(v, false);
  if (!Array.isArray(value)) for (let i = 0; i < (min || 0); i++) add(undefined, false);
  renumber();
  return {
    node: fieldset, control: addButton, label,
    read: () => rows.map((row) => row.widget.read()),
    locate: (loc) => {
      const row = typeof loc[0] === "number" ? rows[loc[0]] : null;
      if (!row) return { control: addButton, label };
      return inRow(row, row.widget.locate(loc.slice(1)) || { control: row.widget.control });
    },
  };
}

// {"all": [...]} or {"any": [...]}: conditions and nested groups (as deep as the limits allow).
function groupWidget(info, value, ctx, { label, nested = false, onRemove } = {}) {
  const id = uid();
  const maxDepth = LIMITS.max_group_depth || 3;
  const mode = info.modes.find((m) => value && Array.isArray(value[m])) || info.modes[0];
  const modeSelect = el("select", { id: `${id}-mode` },
                        ...info.modes.map((m) => el("option", { value: m, text: MODE_LABELS[m] || humanize(m) })));
  modeSelect.value = mode;
  const rows = [];
  const list = el("ol", { class: "rows" });
  const empty = el("p", { class: "hint", text: nested ? "An empty group always holds." : "No conditions: the rule acts every time it is triggered." });
  const addCondition = el("button", { class: "btn small", type: "button", text: "Add condition" });
  const addGroup = el("button", { class: "btn small", type: "button", text: "Add group" });
  const tools = el("div", { class: "actions" }, addCondition, ctx.depth < maxDepth ? addGroup : null);
  const title = el("legend", { text: label });
  const fieldset = el("fieldset", { class: `cond-group depth-${ctx.depth}`, id }, title,
                      fieldBox(`${id}-mode`, "Match", false, modeSelect, null, " mode-field"),
                      list, empty, tools);
  const removeGroup = nested && onRemove ? rowButton("Remove group", "", onRemove, " danger") : null;
  if (removeGroup) tools.append(removeGroup);
  const renumber = () => {
    rows.forEach((row, i) => {
      const name = row.kind === "group" ? `Group ${i + 1}` : `Condition ${i + 1}`;
      row.title.textContent = name;
      const where = nested ? ` of ${title.textContent.toLowerCase()}` : "";
      row.remove.setAttribute("aria-label", `Remove ${name.toLowerCase()}${row.kind === "group" ? "" : where}`);
    });
    empty.hidden = rows.length > 0;
  };
  const removeRow = (row) => {
    rows.splice(rows.indexOf(row), 1);
    row.li.remove();
    renumber();
    addCondition.focus();
  };
  const add = (v, focus) => {
    const isGroup = v && typeof v === "object" && !("type" in v);
    const row = { kind: isGroup ? "group" : "condition", title: el("legend", {}) };
    row.error = el("p", { class: "error row-error", "data-row-error": "", hidden: true });
    if (isGroup || v === "group") {
      row.kind = "group";
      row.widget = groupWidget(info, isGroup ? v : undefined, { ...ctx, depth: ctx.depth + 1, rowLabel: undefined },
                               { label: `Group ${rows.length + 1}`, nested: true, onRemove: () => removeRow(row) });
      row.li = el("li", { class: "row group-row" }, row.widget.node, row.error);
      row.title = row.widget.title;
      row.remove = row.widget.removeGroup;
    } else {
      row.widget = variantWidget(info.variants, v, { ...ctx, rowLabel: () => row.title.textContent },
                                 { label: "Type", style: "select" });
      row.remove = rowButton("Remove", "", () => removeRow(row), " danger");
      row.li = el("li", { class: "row cond-row" }, el("fieldset", { class: "row-box" }, row.title,
        el("div", { class: "row-tools" }, row.remove), row.widget.node, row.error));
    }
    rows.push(row);
    list.append(row.li);
    renumber();
    if (focus) row.widget.control?.focus();
  };
  addCondition.addEventListener("click", () => add(undefined, true));
  addGroup.addEventListener("click", () => add("group", true));
  for (const item of value?.[mode] || []) add(item, false);
  renumber();
  return {
    node: fieldset, control: modeSelect, label, title, removeGroup,
    read: () => ({ [modeSelect.value]: rows.map((row) => row.widget.read()) }),
    locate: (loc) => {
      const rest = loc[0] === modeSelect.value ? loc.slice(1) : loc;
      const row = typeof rest[0] === "number" ? rows[rest[0]] : null;
      if (!row) return { control: modeSelect, label: nested ? null : title.textContent };
      let inner = rest.slice(1);
      if (row.kind === "group" && inner[0] === "group") inner = inner.slice(1);
      return inRow(row, row.widget.locate(inner) || { control: row.widget.control });
    },
  };
}

// --- the whole form -------------------------------------------------------------------------------

// Top-level fields in the schema's order; consecutive simple ones share a grid row.
function buildForm(value, mode) {
  const updatable = new Set(DATA.update_fields || []);
  const required = new Set(ROOT.required || []);
  const node = el("div", { class: "builder" });
  const fields = [];
  let grid = null;
  for (const [key, raw] of Object.entries(ROOT.properties || {})) {
    const widget = fieldWidget(key, raw, value?.[key], { required, owner: null, depth: 1 });
    const locked = mode === "edit" && !updatable.has(key);
    if (locked) for (const input of $all("input, select, textarea, button", widget.node)) input.disabled = true;
    fields.push([key, widget, locked]);
    const simple = !widget.node.matches("fieldset.list, fieldset.cond-group, fieldset.variant, fieldset.group, .af.wide");
    if (simple) {
      grid ??= el("div", { class: "grid" });
      grid.append(widget.node);
      if (locked) widget.node.append(el("span", { class: "hint", text: "Set when it is created." }));
      node.append(grid);
    } else {
      grid = null;
      node.append(widget.node);
    }
  }
  return {
    node,
    read: ({ includeLocked = true } = {}) => {
      const out = {};
      for (const [key, widget, locked] of fields) {
        if (locked && !includeLocked) continue;
        const v = widget.read();
        if (v !== undefined) out[key] = v;
      }
      return out;
    },
    locate: (loc) => {
      const found = fields.find(([key]) => key === loc[0]);
      return found ? found[1].locate(loc.slice(1)) : null;
    },
  };
}

// --- the editor -----------------------------------------------------------------------------------

const PAGES = {
  automation: { noun: "rule", editor: "rule-editor", opener: "new-rule", editAttr: "editRule", data: "rules-data",
                path: "/api/v1/automation/rules" },
  macros: { noun: "macro", editor: "macro-editor", opener: "new-macro", editAttr: "editMacro", data: "macros-data",
            path: "/api/v1/macros" },
};
const PAGE = PAGES[document.getElementById(SECTION)?.dataset.section];
let editor = null;  // {node, opener, form, ...} while open: survives the section being re-rendered

function pickSchemaFields(item) {
  const out = {};
  for (const key of Object.keys(ROOT.properties || {})) if (item && key in item) out[key] = item[key];
  return out;
}

function showProblems(state, error) {
  const box = state.error;
  box.textContent = "";
  let text;
  if (error instanceof FormProblem) text = error.message;
  else if (error instanceof ApiError && error.status < 500) text = error.message;
  else if (error instanceof ApiError) text = `The server could not do this (${error.status}). Try again in a moment.`;
  else text = "The server could not be reached. Check your connection and try again.";
  box.append(el("span", { text }));
  let first = error.control || null;
  if (first) first.setAttribute("aria-invalid", "true");
  const problems = error instanceof ApiError && Array.isArray(error.body?.errors) ? error.body.errors : [];
  const list = el("ul");
  for (const problem of problems.slice(0, 20)) {
    const loc = (problem.loc || []).filter((part, i) => !(i === 0 && part === "body"));
    const msg = problem.msg || problem.type || "invalid";
    const found = state.mode === "builder" ? state.form.locate(loc) : null;
    if (found?.control) {
      found.control.setAttribute("aria-invalid", "true");
      first ??= found.control;
    }
    if (found?.box) {
      found.box.hidden = false;
      found.box.append(el("span", { class: "row-problem", text: `${found.label ? `${found.label}: ` : ""}${msg}` }));
    }
    if (!text.includes(msg)) list.append(el("li", { text: `${loc.join(" › ") || "request"}: ${msg}` }));
  }
  if (list.childElementCount) box.append(list);
  box.hidden = false;
  announce(text);
  if (first && !first.disabled) first.focus(); else box.focus();
}

function clearProblems(state) {
  clearErrors(state.node);
  for (const box of $all("[data-row-error]", state.node)) { box.hidden = true; box.textContent = ""; }
}

function bodyFor(state) {
  let value;
  if (state.mode === "json") {
    try { value = JSON.parse(state.json.value); } catch (error) {
      throw new Problem(`This is not valid JSON (${error.message}).`, state.json);
    }
    if (!value || typeof value !== "object" || Array.isArray(value)) throw new Problem("The JSON must be an object.", state.json);
  } else {
    value = state.form.read({ includeLocked: state.item === null });
  }
  if (state.item === null) return value;
  // Editing: only what changed (the API makes a new version only when the definition changes).
  const updatable = new Set(DATA.update_fields || []);
  const body = {};
  for (const [key, v] of Object.entries(value)) {
    if (v === null && updatable.has(key)) continue;  // an update's null means "leave it"
    if (canonical(v) !== canonical(state.item[key])) body[key] = v;
  }
  return body;
}

async function submit(state, event) {
  event.preventDefault();
  clearProblems(state);
  let body;
  try { body = bodyFor(state); } catch (error) { showProblems(state, error); return; }
  const creating = state.item === null;
  if (!creating && !Object.keys(body).length) { toast("Nothing changed"); announce("Nothing changed"); return; }
  state.save.disabled = true;
  state.save.setAttribute("aria-busy", "true");
  try {
    await api(creating ? "POST" : "PATCH", creating ? PAGE.path : `${PAGE.path}/${state.item.id}`, body);
    const done = `${sentence(PAGE.noun)} ${creating ? "created" : "saved"}`;
    closeEditor(false);
    await refresh();
    toast(done);
    announce(done);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) showProblems(state, error);
  } finally {
    if (state.save.isConnected) { state.save.disabled = false; state.save.removeAttribute("aria-busy"); }
  }
}

function setMode(state, mode) {
  clearProblems(state);
  if (mode === "json") {
    let value;
    try { value = state.form.read(); } catch { value = state.value; }
    state.json.value = JSON.stringify(value, null, 2);
  } else {
    let value;
    try { value = JSON.parse(state.json.value); } catch (error) {
      showProblems(state, new Problem(`The JSON cannot be read (${error.message}): fix it to go back to the builder.`, state.json));
      return;
    }
    state.value = value;
    const fresh = buildForm(value, state.item === null ? "create" : "edit");
    state.form.node.replaceWith(fresh.node);
    state.form = fresh;
  }
  state.mode = mode;
  state.form.node.hidden = mode === "json";
  state.jsonBox.hidden = mode !== "json";
  state.toggle.textContent = mode === "json" ? "Back to the builder" : "Edit as JSON";
  state.toggle.setAttribute("aria-pressed", String(mode === "json"));
  (mode === "json" ? state.json : state.toggle).focus();
}

function openEditor(opener, item) {
  if (editor) closeEditor(false);
  const node = document.getElementById(PAGE.editor);
  const noun = PAGE.noun;
  const titleId = `${PAGE.editor}-title`;
  const heading = el("h2", { id: titleId, tabindex: "-1",
                             text: item ? `Edit ${noun} “${item.name}”` : `New ${noun}` });
  const value = item ? pickSchemaFields(item) : undefined;
  const form = buildForm(value, item ? "edit" : "create");
  const json = el("textarea", { id: `${PAGE.editor}-json`, class: "code", rows: "18", spellcheck: "false" });
  const jsonBox = el("div", { class: "json-box", hidden: true },
                     fieldBox(json.id, `${sentence(noun)} as JSON (what the API takes)`, false, json, null, " wide"));
  const error = el("div", { class: "error form-error", role: "alert", "data-error": "", tabindex: "-1", hidden: true });
  const save = el("button", { class: "btn primary", type: "submit", text: item ? `Save ${noun}` : `Create ${noun}` });
  const cancel = el("button", { class: "btn", type: "button", text: "Cancel" });
  const toggle = el("button", { class: "btn", type: "button", text: "Edit as JSON", "aria-pressed": "false" });
  const formEl = el("form", { id: `${PAGE.editor}-form`, novalidate: true }, form.node, jsonBox, error,
                    el("div", { class: "actions" }, save, cancel, el("span", { class: "spacer" }), toggle));
  node.textContent = "";
  node.append(heading);
  if (item) {
    node.append(el("p", { class: "hint", text: noun === "rule"
      ? `Version ${item.version}. Saving a changed definition makes version ${item.version + 1}; the log keeps which version acted.`
      : "Changes apply the next time it is used." }));
  }
  node.append(formEl);
  node.hidden = false;
  const state = { node, opener, item: item || null, form, json, jsonBox, error, save, toggle, mode: "builder", value };
  formEl.addEventListener("submit", (event) => submit(state, event));
  cancel.addEventListener("click", () => closeEditor(true));
  toggle.addEventListener("click", () => setMode(state, state.mode === "json" ? "builder" : "json"));
  editor = state;
  document.getElementById(PAGE.opener)?.setAttribute("aria-expanded", String(!item));
  heading.focus();
  heading.scrollIntoView({ block: "start" });
}

function closeEditor(restoreFocus) {
  const node = document.getElementById(PAGE.editor);
  if (node) { node.hidden = true; node.textContent = ""; }
  document.getElementById(PAGE.opener)?.setAttribute("aria-expanded", "false");
  const opener = editor?.opener;
  editor = null;
  if (restoreFocus && opener?.isConnected) opener.focus();
  else if (restoreFocus) document.getElementById(PAGE.opener)?.focus();
}

// --- a rule's versions and execution log ----------------------------------------------------------

const DEFINITION = ["name", "description", "trigger", "conditions", "actions", "max_runs_per_hour"];

function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
  }
  return value;
}

function definitionText(version) {
  return JSON.stringify(sorted(Object.fromEntries(DEFINITION.map((k) => [k, version[k]]))), null, 2);
}

// Lines removed and added between two texts (longest common subsequence), with two lines of context.
function lineDiff(before, after) {
  const a = before.split("\n");
  const b = after.split("\n");
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  }
  const ops = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { ops.push([" ", a[i]]); i++; j++; }
    else if (i < n && (j >= m || lcs[i + 1][j] >= lcs[i][j + 1])) { ops.push(["-", a[i]]); i++; }
    else { ops.push(["+", b[j]]); j++; }
  }
  const keep = ops.map((op, k) => op[0] !== " " || ops.slice(Math.max(0, k - 2), k + 3).some((o) => o[0] !== " "));
  const out = [];
  ops.forEach((op, k) => {
    if (keep[k]) out.push(op);
    else if (out[out.length - 1]?.[0] !== "…") out.push(["…", ""]);
  });
  return out;
}

function diffNode(ops) {
  const pre = el("pre", { class: "diff" });
  for (const [sign, text] of ops) {
    const cls = sign === "+" ? "add" : sign === "-" ? "del" : sign === "…" ? "gap" : "same";
    pre.append(el("span", { class: cls, text: sign === "…" ? "…\n" : `${sign} ${text}\n` }));
  }
  return pre;
}

function timeNode(iso) {
  return el("time", { datetime: iso, text: iso.replace("T", " ").slice(0, 16) + " UTC" });
}

function versionsNode(versions, ruleName) {
  const list = el("ol", { class: "versions" });
  versions.forEach((v, k) => {
    const older = versions[k + 1];
    const who = v.created_by == null ? "Swarmdesk" : USER_NAMES[String(v.created_by)] || `user #${v.created_by}`;
    const changed = older ? DEFINITION.filter((key) => canonical(v[key]) !== canonical(older[key])) : [];
    const item = el("li", { class: "version", id: `version-${v.rule_id}-${v.version}` },
      el("h5", {}, `Version ${v.version}`, el("span", { class: "hint" }, " — ", who, ", ", timeNode(v.created_at))),
      el("p", { class: "hint", text: older ? `Changed: ${changed.map(humanize).join(", ") || "nothing"}` : "Created." }));
    if (older) item.append(diffNode(lineDiff(definitionText(older), definitionText(v))));
    item.append(el("details", { class: "version-json" },
      el("summary", {}, `JSON of version ${v.version}`, el("span", { class: "visually-hidden", text: ` of ${ruleName}` })),
      el("pre", { class: "payload", text: definitionText(v) })));
    list.append(item);
  });
  return list;
}

function executionRow(e) {
  const did = el("ul", { class: "did" });
  for (const a of e.actions || []) {
    did.append(el("li", { class: a.ok ? "ok" : "failed" }, a.ok ? "✓ " : "✗ ", el("code", { text: a.type }),
                  a.ok ? (a.result ? ` ${summaryOf(a.result)}` : "") : `: ${a.error || "failed"}`));
  }
  if (!(e.actions || []).length) {
    const results = (e.conditions?.results || []).map((c) => `${c.type} ${c.result === null ? "—" : c.result ? "✓" : "✗"}`);
    did.append(el("li", { class: "muted", text: e.reason || (results.length ? `Conditions: ${results.join(", ")}` : "Nothing done.") }));
  } else if (e.reason) {
    did.append(el("li", { class: "muted", text: e.reason }));
  }
  return el("tr", { id: `execution-${e.id}` },
    el("td", { "data-label": "When" }, timeNode(e.created_at),
       el("div", { class: "hint", text: e.trigger_event_type || e.trigger_key.split(":")[0] })),
    el("td", { "data-label": "Version", text: e.rule_version == null ? "—" : `v${e.rule_version}` }),
    el("td", { "data-label": "Conversation" },
       el("a", { href: `/app/conversations/${e.conversation_id}`, text: `#${e.conversation_id}` })),
    el("td", { "data-label": "Outcome" }, el("span", { class: `badge outcome-${e.outcome}`, text: e.outcome.replace("_", " ") })),
    el("td", { "data-label": "What it did", class: "wrap" }, did));
}

function summaryOf(result) {
  if (!result || typeof result !== "object") return "";
  const parts = Object.entries(result).filter(([k]) => k !== "changed").map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(", ") : typeof v === "object" && v ? JSON.stringify(v) : v}`);
  return parts.length ? `(${parts.join("; ")})` : "";
}

async function loadLog(ruleId, cursor, tbody, more) {
  const params = new URLSearchParams({ rule_id: String(ruleId), limit: String(LOG_PAGE) });
  if (cursor) params.set("cursor", cursor);
  const page = await api("GET", `/api/v1/automation/executions?${params}`);
  for (const e of page.items) tbody.append(executionRow(e));
  localizeTimes(tbody);
  more.hidden = !page.next_cursor;
  more.dataset.cursor = page.next_cursor || "";
  return page;
}

async function loadHistory(details) {
  const ruleId = Number(details.dataset.ruleHistory);
  const body = $(".history-body", details);
  const ruleName = $(".rule-name", details.closest("li.rule"))?.textContent || `rule ${ruleId}`;
  body.textContent = "";
  body.append(el("p", { class: "hint", text: "Loading…" }));
  try {
    const versions = await api("GET", `/api/v1/automation/rules/${ruleId}/versions`);
    const tbody = el("tbody");
    const more = el("button", { class: "btn small", type: "button", text: "Older executions", hidden: true,
                                "aria-label": `Older executions of ${ruleName}` });
    const table = el("div", { class: "table-wrap" }, el("table", { class: "data stack log" },
      el("caption", { class: "visually-hidden", text: `Execution log of ${ruleName}, newest first` }),
      el("thead", {}, el("tr", {}, ...["When", "Version", "Conversation", "Outcome", "What it did"].map((h) => el("th", { scope: "col", text: h })))),
      tbody));
    const empty = el("p", { class: "empty hint", text: "Not run yet." });
    const fresh = el("div", {},
      el("h4", { text: "Versions" }), versionsNode(versions, ruleName),
      el("h4", { text: "Execution log" }), table, empty, el("div", { class: "pager" }, more));
    const first = await loadLog(ruleId, null, tbody, more);
    if (!details.isConnected) return;
    empty.hidden = first.items.length > 0;
    table.hidden = first.items.length === 0;
    more.addEventListener("click", async () => {
      more.disabled = true;
      try { await loadLog(ruleId, more.dataset.cursor, tbody, more); } catch { toast("The log could not be loaded", "error"); }
      finally { more.disabled = false; }
      if (more.hidden) $("a", tbody.lastElementChild)?.focus();
    });
    body.textContent = "";
    body.append(fresh);
    localizeTimes(fresh);
  } catch (error) {
    body.textContent = "";
    body.append(el("p", { class: "error", text: error instanceof ApiError ? error.message : "The history could not be loaded." }));
  }
}

// --- wiring ---------------------------------------------------------------------------------------

if (PAGE) {
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button") : null;
    if (!button) return;
    if (button.id === PAGE.opener) { openEditor(button, null); return; }
    const id = button.dataset[PAGE.editAttr];
    if (id) {
      const item = (readJson(PAGE.data) || []).find((x) => String(x.id) === id);
      if (item) openEditor(button, item);
    }
  });

  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (details instanceof HTMLDetailsElement && details.dataset.ruleHistory && details.open) loadHistory(details);
  }, true);

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && editor && editor.node.contains(document.activeElement)
        && !document.querySelector("dialog[open]")) {
      closeEditor(true);
    }
  });

  // A generic button (pause, delete) re-renders the section: an open editor is carried over.
  const main = document.getElementById("main");
  if (main) {
    new MutationObserver(() => {
      if (!editor) return;
      const placeholder = document.getElementById(PAGE.editor);
      if (placeholder && placeholder !== editor.node) {
        placeholder.replaceWith(editor.node);
        document.getElementById(PAGE.opener)?.setAttribute("aria-expanded", String(editor.item === null));
      }
    }).observe(main, { childList: true });
  }
}
