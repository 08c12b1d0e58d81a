// Small DOM helpers: elements are built with createElement and text nodes, never innerHTML, so nothing the API
// returns is ever parsed as markup.

let nextId = 0;

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function uid(prefix = "f") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// A labelled field: every input gets a <label for>, and an optional hint bound with aria-describedby.
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return h("div", { class: "field", "data-field": control.name || "" }, parts);
}

// A group of checkboxes or radios in a fieldset with its legend (each box with its own label).
export function choices(legend, name, options, { type = "checkbox", checked = [] } = {}) {
  return h("fieldset", { class: "choices", "data-field": name },
    h("legend", {}, legend),
    options.map(([value, text]) => {
      const id = uid(name);
      return h("div", { class: "choice" },
        h("input", { type, id, name, value, checked: checked.includes(value) }),
        h("label", { for: id }, text));
    }));
}

export function select(name, options, { value, required = false, empty } = {}) {
  const el = h("select", { name, required },
    empty !== undefined ? h("option", { value: "" }, empty) : null,
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
  return el;
}

export function replace(target, ...children) {
  target.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

// Field errors of a problem+json answer next to the fields they name, and a summary at the top of the form.
export function showProblem(form, problem) {
  form.querySelectorAll(".error").forEach((e) => e.remove());
  form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  const errors = (problem && problem.errors) || [];
  const summary = h("div", { class: "error", role: "alert" },
    h("p", {}, (problem && (problem.detail || problem.title)) || ""),
    errors.length ? h("ul", {}, errors.map((e) => h("li", {}, `${e.field}: ${e.reason}`))) : null);
  form.prepend(summary);
  for (const e of errors) {
    const leaf = String(e.field || "").split(".").pop();
    const box = form.querySelector(`[data-field="${CSS.escape(leaf)}"]`);
    if (box) {
      box.append(h("p", { class: "error" }, e.reason));
      const control = box.querySelector("input, select, textarea");
      if (control) control.setAttribute("aria-invalid", "true");
    }
  }
  summary.setAttribute("tabindex", "-1");
  summary.focus();
}
