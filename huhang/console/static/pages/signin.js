import { signIn } from "../api.js";
import { field, h, replace } from "../dom.js";
import { t } from "../i18n.js";

export function signInPage(main, done) {
  const username = h("input", { name: "username", autocomplete: "username", required: true, maxlength: 100 });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const status = h("p", { role: "alert", class: "error", hidden: true });
  const form = h("form", { class: "card narrow", novalidate: true },
    h("h1", {}, t("signin.title")),
    field(t("signin.username"), username),
    field(t("signin.password"), password),
    status,
    h("button", { type: "submit", class: "primary" }, t("signin.submit")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    status.hidden = true;
    let result;
    try {
      result = await signIn(username.value.trim(), password.value);
    } catch {
      result = { ok: false, error: "network" };
    }
    if (result.ok) {
      done();
    } else {
      status.textContent = result.error === "network" ? t("error.network") : t("signin.failed");
      status.hidden = false;
      password.value = "";
      password.focus();
    }
  });
  replace(main, form);
  username.focus();
}
