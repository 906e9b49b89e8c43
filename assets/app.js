// Sign-in and first-boot forms. Everything user-visible is set with
// textContent (never innerHTML), so server or user data cannot inject markup.
"use strict";

function csrfToken() {
  const names = ["__Host-palisade_csrf", "palisade_csrf"];
  for (const part of document.cookie.split(";")) {
    const [k, v] = part.trim().split("=");
    if (names.includes(k)) return v;
  }
  return "";
}

async function postJson(path, body) {
  const res = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  return { ok: res.ok, status: res.status, data };
}

function show(text, isError) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function onSubmit(event) {
  event.preventDefault();
  const form = event.target;
  const fields = Object.fromEntries(new FormData(form).entries());
  let result;
  if (form.dataset.action === "setup") {
    fields.token = new URLSearchParams(window.location.search).get("token") || "";
    result = await postJson("/api/v1/setup/complete", fields);
  } else {
    result = await postJson("/api/v1/auth/login", fields);
  }
  if (result.ok) {
    show("Signed in as " + result.data.user.email + ".", false);
    form.reset();
  } else {
    const msg = result.data && result.data.error ? result.data.error.message : "Request failed";
    show(msg + " (" + result.status + ")", true);
  }
}

async function describePolicy() {
  const el = document.getElementById("policy");
  if (!el) return;
  const res = await fetch("/api/v1/auth/policy");
  if (!res.ok) return;
  const p = await res.json();
  el.textContent = "Passwords need at least " + p.min_length + " characters and " +
    p.required_character_classes + " of: " + p.character_class_names.join(", ") + "; common passwords are refused.";
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", onSubmit);
  }
  describePolicy();
});
