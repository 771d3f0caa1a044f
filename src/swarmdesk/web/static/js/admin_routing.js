// Routing admin: skills (generic forms from admin.js), agents' skills and capacity, and queues.
//
// Agents: the table is rendered by the server; an agent's editor (a proficiency per skill, a
// capacity per channel kind) is built here from the page's JSON when their "Edit" row opens, so
// hundreds of agents cost one table, not hundreds of forms. Queues: the form is the server's, with
// relaxation steps added and removed here; the body is read here because the API takes the steps
// as a list of objects and a team that can be cleared (null).
//
// This module imports admin.js, which must be loaded once per page: the template loads only this.
import { run, collect, readJson, FormProblem, showError } from "./admin.js";
import { $, $all, el } from "./dom.js";

const SECTION = "admin-section";

// --- agents: the editor, built on opening -----------------------------------------------------------

let agentCache = { node: null, byId: new Map() };
function agentById(id) {
  const node = document.getElementById("agent-data");
  if (node !== agentCache.node) {
    agentCache = { node, byId: new Map((node ? JSON.parse(node.textContent) : []).map((a) => [a.user_id, a])) };
  }
  return agentCache.byId.get(id);
}

function errorLine() {
  return el("p", { class: "error", role: "alert", "data-error": "", hidden: true });
}

function skillsForm(agent) {
  const skills = readJson("skill-data") || [];
  const levels = readJson("proficiency-data") || [];
  const idBase = `agent-${agent.user_id}-skill`;
  const form = el("form", { class: "agent-form", id: `${idBase}s-form`, "data-agent-form": "skills",
                            "data-path": `/api/v1/routing/agents/${agent.user_id}/skills` },
                  el("h3", { text: "Skills" }));
  if (!skills.length) {
    form.append(el("p", { class: "hint", text: "No skills yet: create one above." }));
    return form;
  }
  const grid = el("div", { class: "skill-grid" });
  for (const skill of skills) {
    const id = `${idBase}-${skill.id}`;
    const select = el("select", { id, name: `skills.${skill.id}`, "data-skill-id": String(skill.id) },
                      el("option", { value: "", text: "none" }),
                      ...levels.map(([value, label]) => el("option", { value: String(value), text: label })));
    select.value = String(agent.skills[String(skill.id)] ?? "");
    grid.append(el("label", { class: "field", for: id }, el("span", { text: skill.name }), select));
  }
  form.append(grid, errorLine(),
              el("div", { class: "actions" },
                 el("button", { class: "btn primary small", type: "submit", id: `${idBase}s-save`, text: "Save skills",
                                "aria-label": `Save ${agent.name}'s skills` })));
  return form;
}

function capacityForm(agent) {
  const kinds = readJson("kind-data") || [];
  const known = new Set(kinds.map((k) => k.kind));
  // Kinds saved through the API that no installed channel has: kept, so saving never drops them.
  const extra = Object.keys(agent.capacity).filter((k) => k !== "default" && !known.has(k)).sort()
    .map((kind) => ({ kind, title: kind }));
  const idBase = `agent-${agent.user_id}-capacity`;
  const hintId = `${idBase}-hint`;
  const grid = el("div", { class: "capacity-grid" });
  const field = (kind, title, value) => {
    const id = `${idBase}-${kind}`;
    const input = el("input", { id, name: `capacity.${kind}`, type: "number", inputmode: "numeric", step: "1",
                                "data-type": "int", "aria-describedby": hintId, autocomplete: "off" });
    input.value = value ?? "";
    return el("label", { class: "field", for: id }, el("span", { text: title }), input);
  };
  grid.append(field("default", "Other channels", agent.capacity.default));
  for (const k of [...kinds, ...extra]) grid.append(field(k.kind, k.title, agent.capacity[k.kind]));
  return el("form", { class: "agent-form", id: `${idBase}-form`, "data-agent-form": "capacity",
                      "data-path": `/api/v1/routing/agents/${agent.user_id}/capacity` },
            el("h3", { text: "Capacity" }),
            el("p", { class: "hint", id: hintId,
                      text: "Open conversations at once, per channel (0–1000). Empty: the “Other channels” number." }),
            grid, errorLine(),
            el("div", { class: "actions" },
               el("button", { class: "btn primary small", type: "submit", id: `${idBase}-save`, text: "Save capacity",
                              "aria-label": `Save ${agent.name}'s capacity` })));
}

function buildEditor(details) {
  const box = $("[data-agent-editor]", details);
  if (!box || box.dataset.built) return;
  const agent = agentById(Number(details.dataset.agent));
  if (!agent) return;
  box.dataset.built = "1";
  box.append(skillsForm(agent));
  if (agent.routed) box.append(capacityForm(agent));
  else box.append(el("p", { class: "hint", text: "Experts are never routed conversations: no capacity to set." }));
}

function buildOpenEditors() {
  for (const details of $all(`#${SECTION} details.agent-edit[open]`)) buildEditor(details);
}

document.addEventListener("toggle", (event) => {
  const details = event.target;
  if (details instanceof HTMLDetailsElement && details.open && details.classList.contains("agent-edit")) {
    buildEditor(details);
  }
}, true);  // toggle does not bubble

function agentBody(form) {
  if (form.dataset.agentForm === "skills") {
    return { skills: $all("select[data-skill-id]", form).filter((s) => s.value !== "")
      .map((s) => ({ skill_id: Number(s.dataset.skillId), proficiency: Number(s.value) })) };
  }
  return { capacity: collect(form).capacity || {} };
}

async function submitAgent(form) {
  const details = form.closest("details");
  const submitId = $("button[type=submit]", form)?.id;
  // The editor is rebuilt after the section refreshes; refresh() puts focus back on an element the
  // fresh page has, so it goes to the row's "Edit" first, then back to this form's button.
  $("summary", details)?.focus({ preventScroll: true });
  await run(form, "PUT", form.dataset.path, agentBody(form),
            { done: form.dataset.agentForm === "skills" ? "Skills saved" : "Capacity saved", form });
  buildOpenEditors();
  document.getElementById(submitId)?.focus({ preventScroll: true });
}

// --- agents: finding one among hundreds ---------------------------------------------------------------

const filter = { text: "", status: "" };

function applyFilter() {
  const table = document.getElementById("agents-table");
  if (!table) return;
  const text = filter.text.trim().toLowerCase();
  let shown = 0;
  const rows = $all("tbody tr", table);
  for (const row of rows) {
    const match = (!text || row.dataset.search.includes(text)) && (!filter.status || row.dataset.status === filter.status);
    row.hidden = !match;
    if (match) shown += 1;
  }
  const total = rows.length;
  const noun = total === 1 ? "agent" : "agents";
  $("#agent-count").textContent = shown === total ? `${total} ${noun}` : `${shown} of ${total} ${noun}`;
  $("#agents-none").hidden = shown > 0 || total === 0;
}

function restoreFilter() {
  const text = document.getElementById("agent-filter");
  const status = document.getElementById("agent-status-filter");
  if (!text || !status) return;
  text.value = filter.text;
  status.value = filter.status;
  if (filter.text || filter.status) applyFilter();
}

function onFilter(event) {
  if (event.target.id === "agent-filter") filter.text = event.target.value;
  else if (event.target.id === "agent-status-filter") filter.status = event.target.value;
  else return;
  applyFilter();
}
document.addEventListener("input", onFilter);
document.addEventListener("change", onFilter);

// --- queues: relaxation steps and the body ------------------------------------------------------------

function renumberSteps(form) {
  const rows = $all("[data-step]", form);
  rows.forEach((row, i) => {
    for (const field of $all("[data-field]", row)) field.name = `relaxation.${i}.${field.dataset.field}`;
    $("[data-step-title]", row).textContent = `Step ${i + 1}`;
    $("[data-remove-step]", row).setAttribute("aria-label", `Remove step ${i + 1}`);
  });
  const none = $("[data-no-steps]", form);
  if (none) none.hidden = rows.length > 0;
}

function addStep(button) {
  const form = button.closest("form");
  const template = document.getElementById("step-template");
  if (!form || !template) return;
  const row = template.content.querySelector("[data-step]").cloneNode(true);
  $("[data-steps]", form).append(row);
  renumberSteps(form);
  $("[data-field=after_seconds]", row).focus();
}

function removeStep(button) {
  const form = button.closest("form");
  const row = button.closest("[data-step]");
  const next = row.nextElementSibling || row.previousElementSibling;
  row.remove();
  renumberSteps(form);
  (next ? $("[data-field=after_seconds]", next) : $("[data-add-step]", form)).focus();
}

function readSteps(form) {
  return $all("[data-step]", form).map((row) => {
    const step = {};
    const after = $("[data-field=after_seconds]", row).value.trim();
    if (after !== "") step.after_seconds = Number(after);
    const minimum = $("[data-field=min_proficiency]", row).value;
    if (minimum !== "") step.min_proficiency = Number(minimum);
    if ($("[data-field=any_agent_on_team]", row).checked) step.any_agent_on_team = true;
    return step;
  });
}

function queueBody(form) {
  const body = collect(form);
  const team = form.elements.namedItem("team_id");
  body.team_id = team && team.value !== "" ? Number(team.value) : null;
  body.relaxation = readSteps(form);
  if (!body.strategy) throw new FormProblem("Choose a strategy.");
  return body;
}

// --- wiring ---------------------------------------------------------------------------------------

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.closest(`#${SECTION}`)) return;
  if (form.dataset.agentForm) {
    event.preventDefault();
    submitAgent(form);
  } else if (form.hasAttribute("data-queue-form")) {
    event.preventDefault();
    let body;
    try { body = queueBody(form); } catch (error) { showError(form, error); return; }
    run(form, form.dataset.verb, form.dataset.path, body, { done: form.dataset.done, form });
  }
});

document.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  if (!button || !button.closest(`#${SECTION}`)) return;
  if (button.hasAttribute("data-add-step")) addStep(button);
  else if (button.hasAttribute("data-remove-step")) removeStep(button);
});

// A refresh (after any save, by this module or admin.js) replaces the section: open editors are
// rebuilt and the agent filter is applied again.
const main = document.getElementById("main");
if (main) {
  new MutationObserver(() => { buildOpenEditors(); restoreFilter(); }).observe(main, { childList: true });
}
buildOpenEditors();
