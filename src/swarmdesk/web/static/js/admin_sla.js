// Business hours & SLAs (/app/admin/sla): structured editors for business calendars (weekly hours
// with any number of time ranges per day, holidays) and SLA policies (conditions, targets typed as
// hours + minutes, warnings), built from the page's embedded data (#sla-data). Each sends the whole
// object to the SLA JSON API; a refusal shows the API's detail next to the form and marks the
// fields it names, success re-renders the section from the server. Policies move up and down in
// one change of the whole order. Importing admin.js brings the section's generic buttons (delete, with confirm).
import { api, ApiError } from "./api.js";
import { $, $all, el, announce, toast } from "./dom.js";
import { FormProblem, clearErrors, readJson, refresh, showError } from "./admin.js";

const DAYS = [["mon", "Monday"], ["tue", "Tuesday"], ["wed", "Wednesday"], ["thu", "Thursday"],
              ["fri", "Friday"], ["sat", "Saturday"], ["sun", "Sunday"]];
const DAY_NAMES = Object.fromEntries(DAYS);
const COPY_TARGETS = ["tue", "wed", "thu", "fri"];
const NEW_WEEK = { mon: [{ start: "09:00", end: "17:00" }], tue: [{ start: "09:00", end: "17:00" }],
                   wed: [{ start: "09:00", end: "17:00" }], thu: [{ start: "09:00", end: "17:00" }],
                   fri: [{ start: "09:00", end: "17:00" }], sat: [], sun: [] };
const TARGETS = [["first_response", "First response"], ["next_response", "Next response"],
                 ["resolution", "Resolution"]];

function pageData() {
  return readJson("sla-data") || { calendars: [], policies: [], inboxes: [], channels: [], priorities: [] };
}

// --- small helpers --------------------------------------------------------------------------------

// "9" -> "09:00", "930" -> "09:30", "9.30" -> "09:30"; null when it is not a time of day (24:00 is).
export function normalizeTime(text) {
  const match = /^(\d{1,2})(?:[:.h]?(\d{2}))?$/.exec(text.trim());
  if (!match) return null;
  const hours = Number(match[1]);
  const minutes = Number(match[2] || 0);
  if (hours > 24 || minutes > 59 || (hours === 24 && minutes)) return null;
  return `${String(hours).padStart(2, "0")}:${String(minutes).padStart(2, "0")}`;
}

// 480 -> "8 h", 90 -> "1 h 30 min", 30 -> "30 min" (business time: never days).
export function duration(minutes) {
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  if (!hours) return `${rest} min`;
  return `${hours.toLocaleString("en")} h${rest ? ` ${rest} min` : ""}`;
}

function invalid(field, message) {
  field.setAttribute("aria-invalid", "true");
  throw new FormProblem(message);
}

function fieldLabel(text, required = false) {
  return el("span", {}, text, required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null);
}

function browserZone() {
  let zone = "UTC";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch { /* an old browser */ }
  const known = $all("#time-zones option").some((option) => option.value === zone);
  return known ? zone : "UTC";
}

// A 422 from request validation, in the form's words: "Monday, range 1: 17:00-09:00 ends before it
// starts; …" rather than "body.hours.mon.0: Value error, …". ``place`` names a location (or null).
// Other refusals (a 409, the domain's own checks) already speak plainly and are shown as they are.
function plainProblem(problem, place) {
  const errors = problem instanceof ApiError && problem.status === 422 && Array.isArray(problem.body?.errors)
    ? problem.body.errors : [];
  if (!errors.length) return problem;
  const lines = errors.slice(0, 10).map((error) => {
    const loc = (error.loc || []).filter((part) => part !== "body");
    const message = String(error.msg || "invalid").replace(/^Value error, /, "")
      .replace(/^(mon|tue|wed|thu|fri|sat|sun): /, (_, day) => `${DAY_NAMES[day]}: `);
    const where = place(loc);
    return where ? `${where}: ${message}` : message;
  });
  return new FormProblem(lines.join(" · "));
}

function focusFirstInvalid(form) {
  const field = $("[aria-invalid=true]", form);
  if (field) field.focus();
}

// --- the editor panels ----------------------------------------------------------------------------

const openers = { calendar: null, policy: null };

function openEditor(kind, opener, title) {
  for (const other of Object.keys(openers)) if (other !== kind) closeEditor(other, false);
  openers[kind] = opener;
  const box = $(`#${kind}-editor`);
  box.textContent = "";
  box.hidden = false;
  for (const button of $all(`[aria-controls=${kind}-editor]`)) {
    button.setAttribute("aria-expanded", String(button === opener));
  }
  const heading = el("h3", { id: `${kind}-editor-title`, tabindex: "-1", text: title });
  box.append(heading);
  return { box, heading };
}

function closeEditor(kind, restoreFocus = true) {
  const box = $(`#${kind}-editor`);
  if (!box) return;
  box.hidden = true;
  box.textContent = "";
  for (const button of $all(`[aria-controls=${kind}-editor]`)) button.setAttribute("aria-expanded", "false");
  const opener = openers[kind];
  openers[kind] = null;
  if (restoreFocus && opener?.isConnected) opener.focus();
}

function actionsRow(kind, submitLabel) {
  const submit = el("button", { class: "btn primary", type: "submit", text: submitLabel });
  const cancel = el("button", { class: "btn", type: "button", text: "Cancel", onclick: () => closeEditor(kind) });
  return { submit, node: el("div", { class: "actions" }, submit, cancel) };
}

// Sends the form's body; on success closes the editor and re-renders the section.
async function save(kind, form, submit, method, path, body, { done, focusId, onProblem, place }) {
  submit.disabled = true;
  submit.setAttribute("aria-busy", "true");
  try {
    await api(method, path, body);
    closeEditor(kind, false);
    await refresh(focusId);
    toast(done);
    announce(done);
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) return;
    showError(form, place ? plainProblem(problem, place) : problem);
    if (onProblem && problem instanceof ApiError) onProblem(problem);
    focusFirstInvalid(form);
  } finally {
    if (submit.isConnected) { submit.disabled = false; submit.removeAttribute("aria-busy"); }
  }
}

// --- calendars: weekly hours ----------------------------------------------------------------------

function timeInput(value, part) {
  const input = el("input", { type: "text", class: "time", inputmode: "numeric", maxlength: "5", placeholder: part === "start" ? "09:00" : "17:00",
                              autocomplete: "off", spellcheck: "false", "data-part": part });
  input.value = value || "";
  input.addEventListener("blur", () => {
    const normal = normalizeTime(input.value);
    if (normal) input.value = normal;
  });
  return input;
}

// Numbers each range's labels ("Friday, range 2, from") and shows "Closed" for a day without any.
function syncDay(row) {
  const label = DAY_NAMES[row.dataset.day];
  const items = $all(".range", row);
  items.forEach((item, index) => {
    const n = index + 1;
    $("[data-part=start]", item).setAttribute("aria-label", `${label}, range ${n}, from`);
    $("[data-part=end]", item).setAttribute("aria-label", `${label}, range ${n}, to`);
    $("button", item).setAttribute("aria-label", `Remove ${label} range ${n}`);
  });
  $(".closed", row).hidden = items.length > 0;
  $(".add-range", row).textContent = items.length ? "Add range" : "Open this day";
}

function addRange(row, range) {
  const list = $(".ranges", row);
  const start = timeInput(range?.start, "start");
  const end = timeInput(range?.end, "end");
  const item = el("div", { class: "range" }, start, el("span", { class: "dash", "aria-hidden": "true", text: "–" }), end);
  const remove = el("button", { class: "btn small icon-only", type: "button", text: "✕", onclick: () => {
    const next = item.nextElementSibling || item.previousElementSibling;
    item.remove();
    syncDay(row);
    ($("input", next || row) || $(".add-range", row)).focus();
  } });
  item.append(remove);
  list.append(item);
  syncDay(row);
  return item;
}

// A new range: 09:00–17:00 on a closed day; after the last one otherwise (as far as the day allows).
function suggestedRange(row) {
  const ends = $all("[data-part=end]", row).map((input) => normalizeTime(input.value)).filter(Boolean);
  if (!ends.length) return { start: "09:00", end: "17:00" };
  const last = ends.sort().at(-1);
  const [h, m] = last.split(":").map(Number);
  const from = h * 60 + m + 60;
  if (from >= 24 * 60) return { start: "", end: "" };
  const to = Math.min(from + 240, 24 * 60);
  const hhmm = (total) => `${String(Math.floor(total / 60)).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;
  return { start: hhmm(from), end: hhmm(to) };
}

function dayRow(day, ranges, idBase) {
  const nameId = `${idBase}-${day}`;
  const row = el("div", { class: "day", role: "group", "aria-labelledby": nameId, "data-day": day },
    el("span", { class: "day-name", id: nameId, text: DAY_NAMES[day] }),
    el("div", { class: "ranges" }),
    el("span", { class: "closed muted", text: "Closed" }));
  const add = el("button", { class: "btn small add-range", type: "button", "aria-label": `Add opening hours to ${DAY_NAMES[day]}`,
                             onclick: () => { const item = addRange(row, suggestedRange(row)); $("input", item).focus(); } });
  row.append(add);
  for (const range of ranges || []) addRange(row, range);
  syncDay(row);
  return row;
}

function copyMonday(week) {
  const monday = $all("[data-day=mon] .range", week).map((item) => ({
    start: $("[data-part=start]", item).value, end: $("[data-part=end]", item).value }));
  for (const day of COPY_TARGETS) {
    const row = $(`[data-day=${day}]`, week);
    $(".ranges", row).textContent = "";
    for (const range of monday) addRange(row, range);
    syncDay(row);
  }
  const text = monday.length ? "Monday's hours copied to Tuesday–Friday" : "Tuesday–Friday are closed, like Monday";
  toast(text);
  announce(text);
}

// --- calendars: holidays --------------------------------------------------------------------------

function syncHolidays(list) {
  const rows = $all(".holiday", list);
  rows.forEach((row, index) => {
    const n = index + 1;
    $("[data-part=date]", row).setAttribute("aria-label", `Holiday ${n} date`);
    $("[data-part=name]", row).setAttribute("aria-label", `Holiday ${n} name`);
    $("[data-part=partial]", row).setAttribute("aria-label", `Holiday ${n}: closed only part of the day`);
    $("[data-part=start]", row).setAttribute("aria-label", `Holiday ${n} closed from`);
    $("[data-part=end]", row).setAttribute("aria-label", `Holiday ${n} closed until`);
    $("button.remove-holiday", row).setAttribute("aria-label", `Remove holiday ${n}`);
  });
  $(".no-holidays", list.parentElement).hidden = rows.length > 0;
}

function addHoliday(list, holiday) {
  const date = el("input", { type: "date", class: "date", "data-part": "date", required: true });
  date.value = holiday?.date || "";
  const name = el("input", { type: "text", class: "holiday-name", "data-part": "name", maxlength: "100", autocomplete: "off",
                             placeholder: "Name, e.g. Christmas Day" });
  name.value = holiday?.name || "";
  const partialBox = el("input", { type: "checkbox", "data-part": "partial" });
  partialBox.checked = Boolean(holiday?.start);
  const start = timeInput(holiday?.start, "start");
  const end = timeInput(holiday?.end, "end");
  const times = el("span", { class: "holiday-times" }, start, el("span", { class: "dash", "aria-hidden": "true", text: "–" }), end);
  times.hidden = !partialBox.checked;
  partialBox.addEventListener("change", () => {
    times.hidden = !partialBox.checked;
    if (partialBox.checked) {
      if (!start.value && !end.value) { start.value = "12:00"; end.value = "24:00"; }
      start.focus();
    }
  });
  const row = el("div", { class: "holiday" }, date, name,
    el("label", { class: "check partial" }, partialBox, " Part of the day"), times);
  const remove = el("button", { class: "btn small remove-holiday", type: "button", text: "Remove", onclick: () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    syncHolidays(list);
    ($("input", next || list) || $(".add-holiday", list.parentElement)).focus();
  } });
  row.append(remove);
  list.append(row);
  syncHolidays(list);
  return row;
}

// --- calendars: reading the form and placing the API's problems -----------------------------------

function readTime(input, what, { start = false } = {}) {
  const value = normalizeTime(input.value);
  if (value === null) invalid(input, `${what}: “${input.value.trim()}” is not a time; write HH:MM, e.g. 09:00 or 17:30 (24:00 ends the day).`);
  if (start && value === "24:00") invalid(input, `${what}: a range cannot start at 24:00; the day ends there.`);
  input.value = value;
  return value;
}

// The whole calendar as CalendarCreate takes it. Remembers which range rows were sent, so the
// API's locations (hours › fri › 1) can be traced back to the inputs.
function readCalendar(form, sent) {
  const name = form.elements.name;
  const zone = form.elements.time_zone;
  if (!name.value.trim()) invalid(name, "Give the calendar a name.");
  if (!zone.value.trim()) invalid(zone, "Choose the calendar's time zone, e.g. Europe/Berlin.");
  const body = { name: name.value.trim(), time_zone: zone.value.trim(), hours: {}, holidays: [] };
  for (const [day, label] of DAYS) {
    body.hours[day] = [];
    sent.ranges[day] = [];
    $all(`[data-day=${day}] .range`, form).forEach((item, index) => {
      const startInput = $("[data-part=start]", item);
      const endInput = $("[data-part=end]", item);
      if (!startInput.value.trim() && !endInput.value.trim()) return;  // an empty row: nothing to send
      const what = `${label}, range ${index + 1}`;
      if (!startInput.value.trim()) invalid(startInput, `${what}: enter when it opens, or remove the range.`);
      if (!endInput.value.trim()) invalid(endInput, `${what}: enter when it closes, or remove the range.`);
      body.hours[day].push({ start: readTime(startInput, what, { start: true }), end: readTime(endInput, what) });
      sent.ranges[day].push(item);
    });
  }
  sent.holidays = [];
  $all(".holiday", form).forEach((row, index) => {
    const what = `Holiday ${index + 1}`;
    const date = $("[data-part=date]", row);
    if (!date.value) invalid(date, `${what}: choose its date, or remove it.`);
    const holiday = { date: date.value, name: $("[data-part=name]", row).value.trim() };
    if ($("[data-part=partial]", row).checked) {
      holiday.start = readTime($("[data-part=start]", row), what, { start: true });
      holiday.end = readTime($("[data-part=end]", row), what);
    }
    body.holidays.push(holiday);
    sent.holidays.push(row);
  });
  return body;
}

// Where a 422 points, in the form's words (the range's number as the form shows it).
function calendarPlace(sent, loc) {
  if (loc[0] === "name") return "Name";
  if (loc[0] === "time_zone") return "Time zone";
  if (loc[0] === "hours" && DAY_NAMES[loc[1]]) {
    const item = Number.isInteger(loc[2]) ? sent.ranges[loc[1]]?.[loc[2]] : null;
    if (!item) return DAY_NAMES[loc[1]];
    return `${DAY_NAMES[loc[1]]}, range ${$all(".range", item.parentElement).indexOf(item) + 1}`;
  }
  if (loc[0] === "holidays") return Number.isInteger(loc[1]) ? `Holiday ${loc[1] + 1}` : "Holidays";
  return null;
}

// Marks the inputs a 422 names: hours › fri › 0 (one range), "fri: intervals overlap" (a day),
// holidays › 2 (one holiday), the name or the zone.
function markCalendarProblems(form, sent, problem) {
  for (const error of problem.body?.errors || []) {
    const loc = (error.loc || []).filter((part) => part !== "body");
    let targets = [];
    if (loc.length === 1 && (loc[0] === "name" || loc[0] === "time_zone")) {
      targets = [form.elements[loc[0]]];
    } else if (loc[0] === "hours" && typeof loc[1] === "string" && Number.isInteger(loc[2])) {
      const item = sent.ranges[loc[1]]?.[loc[2]];
      if (item) targets = $all("input", item);
    } else if (loc[0] === "hours") {
      const day = /\b(mon|tue|wed|thu|fri|sat|sun):/.exec(error.msg || "")?.[1];
      if (day) targets = (sent.ranges[day] || []).flatMap((item) => $all("input", item));
    } else if (loc[0] === "holidays" && Number.isInteger(loc[1])) {
      const row = sent.holidays[loc[1]];
      if (row) targets = $all("input:not([type=checkbox])", row).filter((input) => !input.closest("[hidden]"));
    }
    for (const input of targets) input.setAttribute("aria-invalid", "true");
  }
}

function calendarEditor(opener, calendar) {
  const editing = Boolean(calendar);
  const { box, heading } = openEditor("calendar", opener, editing ? `Edit calendar ${calendar.name}` : "New calendar");
  const idBase = editing ? `calendar-${calendar.id}-form` : "calendar-new-form";
  const form = el("form", { id: "calendar-form", novalidate: true, "aria-labelledby": "calendar-editor-title" });
  const name = el("input", { id: `${idBase}-name`, name: "name", type: "text", required: true, maxlength: "100", autocomplete: "off" });
  name.value = calendar?.name || "";
  const zone = el("input", { id: `${idBase}-zone`, name: "time_zone", type: "text", list: "time-zones", required: true,
                             maxlength: "64", autocomplete: "off", spellcheck: "false", "aria-describedby": `${idBase}-zone-hint` });
  zone.value = calendar?.time_zone || browserZone();

  const week = el("div", { class: "week-editor" });
  const hours = calendar?.hours || NEW_WEEK;
  for (const [day] of DAYS) week.append(dayRow(day, hours[day], idBase));
  const copy = el("button", { class: "btn small", type: "button", text: "Copy Monday to Tuesday–Friday",
                              onclick: () => copyMonday(week) });

  const holidayList = el("div", { class: "holidays" });
  const holidays = el("fieldset", { class: "holidays-box" }, el("legend", { text: "Holidays" }),
    el("p", { class: "hint", text: "Closed dates in the calendar's zone: the whole day, or only part of it." }),
    el("p", { class: "no-holidays muted", text: "No holidays." }), holidayList,
    el("button", { class: "btn small add-holiday", type: "button", text: "Add holiday", onclick: () => {
      $("input", addHoliday(holidayList)).focus();
    } }));
  for (const holiday of calendar?.holidays || []) addHoliday(holidayList, holiday);
  syncHolidays(holidayList);

  const error = el("p", { class: "error", role: "alert", "data-error": "", hidden: true });
  const { submit, node: actions } = actionsRow("calendar", editing ? "Save calendar" : "Create calendar");
  form.append(
    el("div", { class: "grid" },
       el("label", { class: "field", for: name.id }, fieldLabel("Name", true), name),
       el("div", { class: "field-row" },
          el("label", { class: "field", for: zone.id }, fieldLabel("Time zone", true), zone),
          el("span", { class: "hint", id: `${idBase}-zone-hint`, text: "An IANA zone: type a city to search, e.g. Berlin or New_York." }))),
    el("fieldset", { class: "week-box" }, el("legend", { text: "Opening hours" }),
       el("p", { class: "hint", text: "Each day has zero or more ranges, HH:MM to HH:MM (24:00 ends the day); a day "
                                      + "without ranges is closed. A night shift is two ranges: 22:00–24:00 and 00:00–06:00 the next day." }),
       week, el("div", { class: "actions" }, copy)),
    holidays, error, actions);
  box.append(form);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const sent = { ranges: {}, holidays: [] };
    let body;
    try { body = readCalendar(form, sent); } catch (problem) {
      showError(form, problem);
      focusFirstInvalid(form);
      return;
    }
    save("calendar", form, submit, editing ? "PATCH" : "POST",
         editing ? `/api/v1/sla/calendars/${calendar.id}` : "/api/v1/sla/calendars", body,
         { done: editing ? "Calendar saved" : "Calendar created",
           focusId: editing ? `calendar-${calendar.id}-edit` : "new-calendar",
           onProblem: (problem) => markCalendarProblems(form, sent, problem),
           place: (loc) => calendarPlace(sent, loc) });
  });
  (editing ? heading : name).focus();
  heading.scrollIntoView({ block: "nearest" });
}

// --- policies -------------------------------------------------------------------------------------

const POLICY_PLACES = { name: "Name", enabled: "Enabled", calendar_id: "Business hours",
                        first_response_minutes: "First response", next_response_minutes: "Next response",
                        resolution_minutes: "Resolution", warn_percent: "Warning percent",
                        warn_before_minutes: "Warning minutes", conditions: "Applies to", priorities: "Priority",
                        channels: "Channel", inbox_ids: "Inbox", tiers: "Organization tiers" };

function policyPlace(loc) {
  const words = loc.filter((part) => typeof part === "string").map((part) => POLICY_PLACES[part] || part);
  return words.length ? words.join(" › ") : null;
}

// The inputs a 422 names: a target's minutes field, a warning field, the tiers.
function markPolicyProblems(form, problem) {
  for (const error of problem.body?.errors || []) {
    const key = (error.loc || []).filter((part) => part !== "body" && part !== "conditions")[0];
    const field = typeof key === "string" ? form.elements[key] : null;
    if (field instanceof HTMLElement) field.setAttribute("aria-invalid", "true");
  }
}

function numberInput(attrs, value) {
  const input = el("input", { type: "number", inputmode: "numeric", step: "1", min: "0", ...attrs });
  input.value = value === undefined || value === null ? "" : String(value);
  return input;
}

function targetRow(field, label, minutes, idBase) {
  const hours = numberInput({ id: `${idBase}-${field}-hours`, name: `${field}_hours`, class: "hours", max: "8784",
                              "aria-label": `${label} hours` }, minutes ? Math.floor(minutes / 60) : "");
  const mins = numberInput({ id: `${idBase}-${field}-minutes`, name: `${field}_minutes`, class: "minutes",
                             "aria-label": `${label} minutes` }, minutes ? minutes % 60 : "");
  const output = el("output", { class: "hint total", for: `${hours.id} ${mins.id}`, id: `${idBase}-${field}-total` });
  const show = () => {
    const h = hours.value === "" ? 0 : Number(hours.value);
    const m = mins.value === "" ? 0 : Number(mins.value);
    const total = h * 60 + m;
    if (hours.value === "" && mins.value === "") output.textContent = "no target";
    else if (!Number.isFinite(total) || total < 1) output.textContent = "";
    else output.textContent = total >= 60 ? `= ${total.toLocaleString("en")} min (${duration(total)})` : `= ${total} min`;
  };
  hours.addEventListener("input", show);
  mins.addEventListener("input", show);
  show();
  const row = el("div", { class: "target", role: "group", "aria-labelledby": `${idBase}-${field}-label` },
    el("span", { class: "target-name", id: `${idBase}-${field}-label`, text: label }),
    el("span", { class: "amount" }, hours, el("span", { "aria-hidden": "true", text: "h" })),
    el("span", { class: "amount" }, mins, el("span", { "aria-hidden": "true", text: "min" })),
    output);
  return { row, read: () => readTarget(hours, mins, label) };
}

function readTarget(hours, mins, label) {
  if (hours.value === "" && mins.value === "") {
    if (hours.validity.badInput || mins.validity.badInput) invalid(hours.validity.badInput ? hours : mins, `${label}: type a number.`);
    return null;
  }
  const h = hours.value === "" ? 0 : Number(hours.value);
  const m = mins.value === "" ? 0 : Number(mins.value);
  if (!Number.isInteger(h) || h < 0) invalid(hours, `${label}: hours must be a whole number, 0 or more.`);
  if (!Number.isInteger(m) || m < 0) invalid(mins, `${label}: minutes must be a whole number, 0 or more.`);
  const total = h * 60 + m;
  if (total < 1) invalid(mins, `${label}: enter at least 1 minute, or leave both fields empty for no ${label.toLowerCase()} target.`);
  return total;
}

function checkGroup(legend, name, options, selected, idBase, hint) {
  const group = el("fieldset", { class: "checks condition" }, el("legend", { text: legend }));
  if (hint) group.append(el("p", { class: "hint", text: hint }));
  if (!options.length) group.append(el("p", { class: "muted", text: "None yet." }));
  options.forEach((option, index) => {
    const id = `${idBase}-${name}-${index}`;
    const box = el("input", { type: "checkbox", id, name, value: String(option.value) });
    box.checked = selected.some((value) => String(value) === String(option.value));
    group.append(el("label", { class: "check", for: id }, box, ` ${option.label}`));
  });
  return group;
}

function checked(form, name) {
  return $all(`input[type=checkbox][name=${name}]`, form).filter((box) => box.checked).map((box) => box.value);
}

function policyEditor(opener, policy) {
  const editing = Boolean(policy);
  const data = pageData();
  const { box, heading } = openEditor("policy", opener, editing ? `Edit policy ${policy.name}` : "New policy");
  const idBase = editing ? `policy-${policy.id}-form` : "policy-new-form";
  const form = el("form", { id: "policy-form", novalidate: true, "aria-labelledby": "policy-editor-title" });

  const name = el("input", { id: `${idBase}-name`, name: "name", type: "text", required: true, maxlength: "100", autocomplete: "off" });
  name.value = policy?.name || "";
  const enabled = el("input", { id: `${idBase}-enabled`, name: "enabled", type: "checkbox" });
  enabled.checked = policy ? policy.enabled : true;
  const calendar = el("select", { id: `${idBase}-calendar`, name: "calendar_id" },
    el("option", { value: "", text: "Round the clock (no calendar)" }),
    ...data.calendars.map((c) => el("option", { value: String(c.id), text: `${c.name} (${c.time_zone})` })));
  calendar.value = policy?.calendar_id ? String(policy.calendar_id) : "";

  const targets = TARGETS.map(([field, label]) => targetRow(field, label, policy?.[`${field}_minutes`], idBase));

  // Warning: a share of each target, a fixed time before each deadline, or none.
  const mode = policy ? (policy.warn_percent !== null ? "percent" : policy.warn_before_minutes !== null ? "before" : "none")
    : "percent";
  const percent = numberInput({ id: `${idBase}-warn-percent`, name: "warn_percent", min: "1", max: "99", class: "short",
                                "aria-label": "Warn at this percent of each target" }, policy?.warn_percent ?? 80);
  const before = numberInput({ id: `${idBase}-warn-before`, name: "warn_before_minutes", min: "1", class: "short",
                               "aria-label": "Warn this many minutes before each deadline" }, policy?.warn_before_minutes ?? 15);
  const radio = (value, label, ...extra) => {
    const id = `${idBase}-warn-${value}-choice`;
    const input = el("input", { type: "radio", id, name: "warn_mode", value });
    input.checked = mode === value;
    return el("div", { class: "warn-option" }, el("label", { class: "check", for: id }, input, ` ${label}`), ...extra);
  };
  // Typing a number picks its kind of warning.
  percent.addEventListener("input", () => { $(`#${idBase}-warn-percent-choice`).checked = true; });
  before.addEventListener("input", () => { $(`#${idBase}-warn-before-choice`).checked = true; });
  const warning = el("fieldset", { class: "warning" }, el("legend", { text: "Warning" }),
    radio("percent", "At a share of each target:", percent, el("span", { "aria-hidden": "true", text: "%" })),
    radio("before", "A fixed time before each deadline:", before, el("span", { "aria-hidden": "true", text: "min" })),
    radio("none", "No warning"));

  const conditions = policy?.conditions || { priorities: [], channels: [], inbox_ids: [], tiers: [] };
  // Values the policy holds that are no longer offered (a deleted inbox) stay visible and selectable.
  const channelOptions = data.channels.map((c) => ({ value: c.kind, label: c.title }));
  for (const kind of conditions.channels) {
    if (!channelOptions.some((o) => o.value === kind)) channelOptions.push({ value: kind, label: `${kind} (not installed)` });
  }
  const inboxOptions = data.inboxes.map((i) => ({ value: i.id, label: `${i.name} (${i.channel})` }));
  for (const id of conditions.inbox_ids) {
    if (!inboxOptions.some((o) => o.value === id)) inboxOptions.push({ value: id, label: `Inbox #${id} (deleted)` });
  }
  const tiers = el("input", { id: `${idBase}-tiers`, name: "tiers", type: "text", autocomplete: "off", maxlength: "2000",
                              "aria-describedby": `${idBase}-tiers-hint` });
  tiers.value = conditions.tiers.join(", ");
  const when = el("fieldset", { class: "conditions" }, el("legend", { text: "Applies to" }),
    el("p", { class: "hint", text: "Every group with a ticked value must match (any one of its values); an empty group matches anything." }),
    el("div", { class: "condition-groups" },
      checkGroup("Priority", "priorities", data.priorities.map((p) => ({ value: p.value, label: p.label })),
                 conditions.priorities, idBase),
      checkGroup("Channel", "channels", channelOptions, conditions.channels, idBase),
      checkGroup("Inbox", "inbox_ids", inboxOptions, conditions.inbox_ids, idBase)),
    el("div", { class: "field-row" },
       el("label", { class: "field", for: tiers.id }, fieldLabel("Organization tiers"), tiers),
       el("span", { class: "hint", id: `${idBase}-tiers-hint`,
                    text: "The organization's custom attribute “tier”, compared without case; separate several with commas, e.g. gold, platinum." })));

  const error = el("p", { class: "error", role: "alert", "data-error": "", hidden: true });
  const { submit, node: actions } = actionsRow("policy", editing ? "Save policy" : "Create policy");
  form.append(
    el("div", { class: "grid" },
       el("label", { class: "field", for: name.id }, fieldLabel("Name", true), name),
       el("label", { class: "field", for: calendar.id }, fieldLabel("Business hours"), calendar)),
    el("div", { class: "field check-field" }, el("label", { class: "check", for: enabled.id }, enabled, " Enabled")),
    el("fieldset", { class: "targets-box" }, el("legend", { text: "Targets" }),
       el("p", { class: "hint", text: "In business time of the chosen hours. Leave a target empty for none; a policy needs at least one." }),
       ...targets.map((t) => t.row)),
    warning, when, error, actions);
  box.append(form);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    let body;
    try {
      if (!name.value.trim()) invalid(name, "Give the policy a name.");
      body = { name: name.value.trim(), enabled: enabled.checked,
               calendar_id: calendar.value ? Number(calendar.value) : null };
      TARGETS.forEach(([field], index) => { body[`${field}_minutes`] = targets[index].read(); });
      const chosen = $("input[name=warn_mode]:checked", form)?.value || "none";
      body.warn_percent = null;
      body.warn_before_minutes = null;
      if (chosen === "percent") {
        if (percent.value === "") invalid(percent, "Warning: enter a percent from 1 to 99, or choose another kind of warning.");
        body.warn_percent = Number(percent.value);
      } else if (chosen === "before") {
        if (before.value === "") invalid(before, "Warning: enter how many minutes before each deadline, or choose another kind of warning.");
        body.warn_before_minutes = Number(before.value);
      }
      body.conditions = {
        priorities: checked(form, "priorities"),
        channels: checked(form, "channels"),
        inbox_ids: checked(form, "inbox_ids").map(Number),
        tiers: tiers.value.split(/[,\n]/).map((t) => t.trim()).filter(Boolean),
      };
    } catch (problem) {
      showError(form, problem);
      focusFirstInvalid(form);
      return;
    }
    save("policy", form, submit, editing ? "PATCH" : "POST",
         editing ? `/api/v1/sla/policies/${policy.id}` : "/api/v1/sla/policies", body,
         { done: editing ? "Policy saved" : "Policy created", focusId: editing ? `policy-${policy.id}-edit` : "new-policy",
           place: policyPlace, onProblem: (problem) => markPolicyProblems(form, problem) });
  });
  (editing ? heading : name).focus();
  heading.scrollIntoView({ block: "nearest" });
}

// --- policies: order ------------------------------------------------------------------------------

// Swaps a policy with its neighbour: the whole new order goes in one change (PUT …/order), so a
// move is never half done; if someone changed the list meanwhile, the API says so and the page
// shows the list as it is.
async function movePolicy(button) {
  const policies = pageData().policies;
  const id = Number(button.dataset.movePolicy);
  const step = Number(button.dataset.direction);
  const index = policies.findIndex((p) => p.id === id);
  const target = index + step;
  if (index < 0 || target < 0 || target >= policies.length) return;
  const order = policies.slice();
  [order[index], order[target]] = [order[target], order[index]];
  const moved = policies[index];
  const edge = target === 0 ? "down" : target === policies.length - 1 ? "up" : (step < 0 ? "up" : "down");
  button.disabled = true;
  try {
    await api("PUT", "/api/v1/sla/policies/order", { policy_ids: order.map((p) => p.id) });
    await refresh(`policy-${moved.id}-${edge}`);
    const text = `${moved.name} moved ${step < 0 ? "up" : "down"}, to place ${target + 1}`;
    toast(text);
    announce(text);
  } catch (problem) {
    if (problem instanceof ApiError && problem.status === 401) return;
    await refresh(button.id);
    showError(document.getElementById(button.id) || button, problem);
  } finally {
    if (button.isConnected) button.disabled = false;
  }
}

// --- wiring ---------------------------------------------------------------------------------------

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  if (!button || !button.closest("#admin-section") || button.closest(".sla-editor")) return;
  const data = pageData();
  if (button.id === "new-calendar") calendarEditor(button, null);
  else if (button.dataset.editCalendar) {
    const calendar = data.calendars.find((c) => c.id === Number(button.dataset.editCalendar));
    if (calendar) calendarEditor(button, calendar);
  } else if (button.id === "new-policy") policyEditor(button, null);
  else if (button.dataset.editPolicy) {
    const policy = data.policies.find((p) => p.id === Number(button.dataset.editPolicy));
    if (policy) policyEditor(button, policy);
  } else if (button.dataset.movePolicy) movePolicy(button);
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || document.querySelector("dialog[open]")) return;
  for (const kind of Object.keys(openers)) {
    const box = $(`#${kind}-editor`);
    if (box && !box.hidden && box.contains(document.activeElement)) closeEditor(kind);
  }
});
