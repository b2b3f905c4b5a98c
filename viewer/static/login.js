// The login page: POST /api/session with the name and password (JSON); the answer sets the
// session cookie (HttpOnly, SameSite=Strict). Then back to the viewer page the user came from.

const form = document.getElementById("login");
const error = document.getElementById("login-error");

function next() {
  const target = new URLSearchParams(location.search).get("next") || "";
  return target.startsWith("#/") ? `/${target}` : "/"; // only a viewer route, never another site
}

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  error.hidden = true;
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
    if (response.ok) {
      location.assign(next());
      return;
    }
    let detail = `HTTP ${response.status}`;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    error.textContent = typeof detail === "string" ? detail : "log in failed";
    error.hidden = false;
    form.password.value = "";
    form.password.focus();
  } catch (err) {
    error.textContent = `the server cannot be reached (${err.message})`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});
