// One catalogue per language (i18n/zh-CN.json, i18n/en.json); Chinese by default. The choice is kept in
// localStorage (a preference, no personal data).

const LANGUAGES = ["zh-CN", "en"];
const KEY = "huhang.lang";
let catalogue = {};
let current = "zh-CN";

export function language() {
  return current;
}

export function otherLanguage() {
  return current === "zh-CN" ? "en" : "zh-CN";
}

export async function loadLanguage(wanted) {
  const lang = LANGUAGES.includes(wanted) ? wanted : (localStorage.getItem(KEY) || "zh-CN");
  const answer = await fetch(`i18n/${lang}.json`);
  catalogue = await answer.json();
  current = lang;
  localStorage.setItem(KEY, lang);
  document.documentElement.lang = lang;
}

// t("worklist.as_of", {date: "2026-12-01"}): the catalogue's text with {placeholders} filled; the key if missing.
export function t(key, vars = {}) {
  let text = Object.prototype.hasOwnProperty.call(catalogue, key) ? catalogue[key] : key;
  for (const [name, value] of Object.entries(vars)) text = text.split(`{${name}}`).join(String(value));
  return text;
}

// A coded value's label ("agency.police" -> 市公安局), the code itself when the catalogue has none.
export function label(kind, code) {
  if (code === null || code === undefined || code === "") return "—";
  const key = `${kind}.${code}`;
  const text = t(key);
  return text === key ? String(code) : text;
}

export function options(kind, codes) {
  return codes.map((code) => [code, label(kind, code)]);
}

export function formatDate(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  if (/^\d{4}-\d{2}-\d{2}$/.test(String(value))) return String(value);
  return d.toLocaleString(current, { timeZone: "Asia/Shanghai", dateStyle: "medium", timeStyle: "short" });
}
