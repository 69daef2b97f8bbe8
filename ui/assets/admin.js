// admin.js: the admin dashboard: users, providers, usage and recent
// requests, all from the JSON admin API under /admin.
"use strict";

(function () {
  var el = AP.el, $ = AP.$, api = AP.api;
  var users = []; // the last list, for the user pickers
  var loaded = {}; // panels loaded since sign-in

  var select = AP.tabs(function (id) {
    if (!loaded[id]) { loaded[id] = true; panels[id](); }
  });
  var panels = { users: loadUsers, hosts: loadHosts, usage: loadUsage, requests: loadRequests };

  AP.signIn({
    storageKey: "aiproxy.admin",
    what: "admin token",
    check: function (token) { return api("/admin/users", { token: token }).then(setUsers); },
    ready: function () { loaded = { users: true }; select("users"); renderUsers(); },
    signedOut: function () { $("#issued").hidden = true; $("#issued").textContent = ""; },
  });

  // Users.

  function userPath(name) { return "/admin/users/" + encodeURIComponent(name); }

  function setUsers(list) {
    users = list.data || [];
    users.sort(function (a, b) { return a.name.localeCompare(b.name); });
    var pick = $("#usage-filter select[name=user]"), names = $("#user-names");
    var current = pick.value;
    pick.replaceChildren(el("option", { value: "" }, "all users"));
    names.replaceChildren();
    users.forEach(function (u) {
      pick.append(el("option", { value: u.name }, u.name));
      names.append(el("option", { value: u.name }));
    });
    pick.value = current;
  }

  async function loadUsers() {
    var list = await AP.run($("#users-status"), function () { return api("/admin/users"); });
    if (!list) return;
    setUsers(list);
    renderUsers();
  }

  function expiryText(u) {
    if (!u.expires_at) return "never";
    var t = Date.parse(u.expires_at);
    return (t <= Date.now() ? "expired " : "") + AP.when(u.expires_at);
  }

  function isExpired(u) { return u.expires_at && Date.parse(u.expires_at) <= Date.now(); }

  function renderUsers() {
    var body = $("#users-table tbody");
    body.replaceChildren();
    if (!users.length) {
      body.append(el("tr", {}, el("td", { colSpan: 8, className: "empty" }, "No users yet: create one above.")));
      return;
    }
    users.forEach(function (u) {
      body.append(userRow(u));
    });
    loadSpend();
  }

  function policyCell(own, effective, text) {
    var s = text(own);
    if (s) return s;
    s = text(effective);
    return s ? el("span", { className: "muted", title: "the site's default" }, s + " (default)") : "";
  }

  function userRow(u) {
    var row = el("tr", { dataset: { user: u.name } },
      el("td", { className: "name" }, u.name),
      el("td", {}, el("code", {}, u.key_hint)),
      el("td", { className: isExpired(u) ? "bad" : "" }, expiryText(u)),
      el("td", { className: "models" }), el("td", { className: "limits" }),
      el("td", { className: "budget" }), el("td", { className: "left" }),
      el("td", { className: "row-actions" },
        AP.confirmButton("Reset key", "Really reset?", function () { resetUser(u); }, "reset"),
        el("button", { type: "button", className: "expiry", onclick: function () { expiryEditor(row, u); } }, "Expiry…"),
        isExpired(u)
          ? el("button", { type: "button", className: "resume", onclick: function () { patchUser(u, { expires_at: null }); } }, "Resume")
          : AP.confirmButton("Suspend", "Suspend now?", function () { patchUser(u, { expires_at: new Date().toISOString() }); }, "suspend"),
        AP.confirmButton("Delete", "Really delete?", function () { deleteUser(u); }, "delete")));
    fillPolicy(row, u);
    return row;
  }

  // fillPolicy shows the user's policy, and once loaded what is left of it.
  function fillPolicy(row, u) {
    var spend = u.spend || {}, eff = spend.effective || {};
    function set(cls, content) { row.querySelector("td." + cls).replaceChildren(content || ""); }
    set("models", policyCell(u.models, eff.models, function (m) { return m && m.length ? m.join(", ") : ""; }) || "any");
    set("limits", policyCell(u.limits, eff.limits, AP.limitsText));
    set("budget", policyCell(u.budget, eff.budget, AP.budgetText));
    set("left", u.spend ? AP.leftText(spend.left) : "");
    if (u.spend) row.dataset.spend = "loaded";
  }

  // loadSpend fills in what each user has left, a few users at a time.
  async function loadSpend() {
    var queue = users.slice(0, 200), shown = users;
    async function worker() {
      while (queue.length) {
        var u = queue.shift();
        try {
          var full = await api(userPath(u.name));
          if (users !== shown) return; // the list was reloaded meanwhile
          Object.assign(u, full);
          var row = document.querySelector('#users-table tr[data-user="' + CSS.escape(u.name) + '"]');
          if (row) fillPolicy(row, u);
        } catch (e) { /* the row keeps its own policy */ }
      }
    }
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  function showIssued(issued, what) {
    var box = $("#issued");
    box.replaceChildren(
      el("p", {}, what + " ", el("strong", {}, issued.name), ". Copy the key now: it is shown only this once."),
      el("div", { className: "keybox" }, el("code", { id: "issued-key" }, issued.key), AP.copyButton(issued.key)),
      el("button", { type: "button", className: "secondary", onclick: function () { box.hidden = true; box.textContent = ""; } }, "Done"));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  async function resetUser(u) {
    var issued = await AP.run($("#users-status"), function () {
      return api(userPath(u.name) + "/reset", { method: "POST" });
    }, "Resetting the key of " + u.name + "…");
    if (!issued) return;
    await loadUsers();
    showIssued(issued, "New key for");
  }

  async function patchUser(u, body) {
    var ok = await AP.run($("#users-status"), function () {
      return api(userPath(u.name), { method: "PATCH", body: body });
    }, "Saving…");
    if (ok) loadUsers();
  }

  async function deleteUser(u) {
    var ok = await AP.run($("#users-status"), function () {
      return api(userPath(u.name), { method: "DELETE" });
    }, "Deleting " + u.name + "…");
    if (ok) loadUsers();
  }

  function expiryEditor(row, u) {
    var next = row.nextElementSibling;
    if (next && next.classList.contains("editor")) { next.remove(); return; }
    var ttl = el("input", { name: "ttl", placeholder: "720h", autocomplete: "off", required: true });
    var form = el("form", { className: "inline" },
      el("label", {}, "Expires in ", ttl),
      el("button", { type: "submit" }, "Set"),
      el("button", { type: "button", className: "secondary", onclick: function () { patchUser(u, { expires_at: null }); } }, "Never expires"),
      el("button", { type: "button", className: "link", onclick: function () { editor.remove(); } }, "Cancel"));
    form.addEventListener("submit", function (ev) { ev.preventDefault(); patchUser(u, { ttl: ttl.value.trim() }); });
    var editor = el("tr", { className: "editor" }, el("td", { colSpan: 8 }, form));
    row.after(editor);
    ttl.focus();
  }

  // createBody turns the new-user form into the POST /admin/users body.
  function createBody(form) {
    var f = new FormData(form), body = { name: f.get("name").trim() };
    var ttl = f.get("ttl").trim();
    if (ttl) body.ttl = ttl;
    var models = f.get("models").split(/[\s,]+/).filter(Boolean);
    if (models.length) body.models = models;
    function numbers(keys, parse) {
      var o = {}, any = false;
      keys.forEach(function (k) {
        var v = f.get(k).trim();
        if (v !== "") { o[k] = parse(v); any = true; }
      });
      return any ? o : null;
    }
    var limits = numbers(["rpm", "tpm", "max_parallel"], Number);
    if (limits) body.limits = limits;
    var budget = numbers(["usd", "tokens", "requests"], Number);
    if (budget || f.get("period")) {
      budget = budget || {};
      if (f.get("period")) budget.period = f.get("period");
      body.budget = budget;
    }
    return body;
  }

  $("#create-user").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var form = ev.target;
    var issued = await AP.run($("#create-status"), function () {
      return api("/admin/users", { method: "POST", body: createBody(form) });
    }, "Creating…");
    if (!issued) return;
    form.reset();
    $("#create-box").open = false;
    await loadUsers();
    showIssued(issued, "Created");
  });
  $("#users-refresh").addEventListener("click", loadUsers);

  // Providers.

  function stateText(s) {
    if (!s) return "in use";
    var why = s.reason ? " (" + s.reason + ")" : "";
    switch (s.status) {
      case "resting": return "resting until " + AP.when(s.until) + why;
      case "set_aside": return "set aside" + why + " since " + AP.when(s.at);
      default: return "in use, " + AP.num(s.errors) + " errors, last" + why + " " + AP.when(s.at);
    }
  }

  async function loadHosts() {
    var list = await AP.run($("#hosts-status"), function () { return api("/admin/hosts"); });
    if (!list) return;
    var box = $("#hosts-list");
    box.replaceChildren();
    if (!list.data.length) box.append(el("p", { className: "empty" }, "No providers."));
    list.data.forEach(function (h) { box.append(hostCard(h)); });
  }

  function hostPath(name) { return "/admin/hosts/" + encodeURIComponent(name); }

  function hostCard(h) {
    var status = el("p", { className: "status", hidden: true });
    var keys = el("tbody");
    var out = false;
    h.keys.forEach(function (k) {
      if (k.state && k.state.status !== "ok") out = true;
      keys.append(el("tr", { className: k.state ? "state-" + k.state.status : "" },
        el("td", {}, el("code", {}, k.key_hint)),
        el("td", {}, k.source),
        el("td", { className: "state" }, stateText(k.state)),
        el("td", {}, k.id ? AP.confirmButton("Remove", "Really remove?", function () {
          hostCall(status, hostPath(h.name) + "/keys/" + encodeURIComponent(k.id), { method: "DELETE" });
        }, "remove") : el("span", { className: "muted" }, "in config"))));
    });
    if (!h.keys.length) keys.append(el("tr", {}, el("td", { colSpan: 4, className: "empty" }, "No keys.")));
    var key = el("input", { name: "key", type: "password", placeholder: "new key", required: true, autocomplete: "off", spellcheck: "false" });
    var add = el("form", { className: "inline" }, key, el("button", { type: "submit" }, "Add key"));
    add.addEventListener("submit", function (ev) {
      ev.preventDefault();
      hostCall(status, hostPath(h.name) + "/keys", { method: "POST", body: { key: key.value.trim() } });
    });
    return el("div", { className: "card host", dataset: { host: h.name } },
      el("div", { className: "bar" },
        el("h2", {}, h.name, h.default ? el("span", { className: "tag" }, "default") : null, el("span", { className: "tag muted" }, h.source)),
        out ? el("button", { type: "button", className: "secondary", onclick: function () {
          hostCall(status, hostPath(h.name) + "/restore", { method: "POST" });
        } }, "Use all keys again") : null),
      el("p", {}, "Base URL ", el("code", {}, h.base_url)),
      h.models && h.models.length ? el("p", {}, "Models ", el("code", {}, h.models.join(", "))) : null,
      el("div", { className: "scroll" }, el("table", { className: "keys" },
        el("thead", {}, el("tr", {}, el("th", {}, "Key"), el("th", {}, "From"), el("th", {}, "State"), el("th", {}))), keys)),
      add, status);
  }

  async function hostCall(status, path, opts) {
    var ok = await AP.run(status, function () { return api(path, opts); }, "Saving…");
    if (ok) loadHosts();
  }

  $("#add-host").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var form = ev.target, f = new FormData(form);
    var body = { key: f.get("key").trim() };
    if (f.get("base_url").trim()) body.base_url = f.get("base_url").trim();
    var ok = await AP.run($("#add-host-status"), function () {
      return api(hostPath(f.get("host").trim().toLowerCase()) + "/keys", { method: "POST", body: body });
    }, "Adding…");
    if (ok) { form.reset(); loadHosts(); }
  });

  // Usage.

  (function () {
    var range = AP.lastDays(30), form = $("#usage-filter");
    form.from.value = range[0];
    form.to.value = range[1];
  })();

  function usageQuery(extra) {
    var f = new FormData($("#usage-filter"));
    return AP.query(Object.assign({ from: f.get("from"), to: f.get("to"), user: f.get("user") }, extra || {}));
  }

  async function loadUsage() {
    var form = $("#usage-filter");
    var rows = await AP.run($("#usage-status"), function () { return api("/admin/usage" + usageQuery()); });
    if (!rows) return;
    AP.usageChart($("#usage-chart"), rows.data, form.from.value, form.to.value);
    renderUsageUsers(rows.data);
  }

  function renderUsageUsers(rows) {
    var by = Object.create(null); // names such as constructor are names too
    rows.forEach(function (r) {
      var s = by[r.user] || (by[r.user] = { user: r.user, requests: 0, prompt: 0, completion: 0, tokens: 0, cost: 0 });
      s.requests += r.requests || 0;
      s.prompt += r.prompt_tokens || 0;
      s.completion += r.completion_tokens || 0;
      s.tokens += r.total_tokens || 0;
      s.cost += Number(r.cost_usd || 0);
    });
    var list = Object.values(by).sort(function (a, b) { return b.tokens - a.tokens || a.user.localeCompare(b.user); });
    var body = $("#usage-users tbody");
    body.replaceChildren();
    if (!list.length) body.append(el("tr", {}, el("td", { colSpan: 6, className: "empty" }, "No usage in this range.")));
    list.forEach(function (s) {
      body.append(el("tr", { dataset: { user: s.user } },
        el("td", {}, s.user),
        el("td", { className: "n" }, AP.num(s.requests)),
        el("td", { className: "n" }, AP.num(s.prompt)),
        el("td", { className: "n" }, AP.num(s.completion)),
        el("td", { className: "n" }, AP.num(s.tokens)),
        el("td", { className: "n" }, s.cost ? AP.usd(s.cost) : "")));
    });
  }

  $("#usage-filter").addEventListener("submit", function (ev) { ev.preventDefault(); loadUsage(); });

  $("#usage-csv").addEventListener("click", async function () {
    var form = $("#usage-filter");
    var name = "usage-" + form.from.value + "-" + form.to.value + ".csv";
    var text = await AP.run($("#usage-status"), async function () {
      var res = await api("/admin/usage" + usageQuery({ format: "csv" }), { raw: true });
      return res.text();
    }, "Preparing the CSV…");
    if (text === undefined) return;
    var url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    var a = el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
    var lines = text.split("\n").filter(Boolean).length - 1;
    AP.show($("#usage-status"), "Downloaded " + name + " (" + lines + " rows).");
  });

  // Recent requests.

  async function loadRequests() {
    var f = new FormData($("#requests-filter"));
    var body = $("#requests-table tbody"), status = $("#requests-status");
    AP.show(status, "Loading…", "busy");
    var list;
    try {
      list = await api("/admin/requests" + AP.query({ user: f.get("user").trim(), limit: f.get("limit") }));
    } catch (e) {
      body.replaceChildren();
      AP.show(status, e.status === 404 ? "The request log is off on this gateway." : e.message, e.status === 404 ? "" : "error");
      return;
    }
    AP.show(status, "");
    var rows = (list.data || []).slice().sort(function (a, b) { return Date.parse(b.time) - Date.parse(a.time); });
    body.replaceChildren();
    if (!rows.length) body.append(el("tr", {}, el("td", { colSpan: 10, className: "empty" }, "No requests.")));
    rows.forEach(function (q) {
      body.append(el("tr", { className: q.status >= 400 ? "bad" : "" },
        el("td", { className: "nowrap" }, AP.when(q.time, true)),
        el("td", {}, q.user),
        el("td", {}, q.model),
        el("td", {}, q.host),
        el("td", {}, el("code", {}, q.path)),
        el("td", { className: "n" }, q.status),
        el("td", { className: "n" }, AP.num(q.prompt_tokens) + " / " + AP.num(q.completion_tokens)),
        el("td", { className: "n" }, q.cost_usd ? AP.usd(q.cost_usd) : ""),
        el("td", { className: "n" }, q.duration_ms < 10 ? Number(q.duration_ms).toFixed(1) : AP.num(Math.round(q.duration_ms))),
        el("td", {}, q.stream ? "yes" : "")));
    });
  }

  $("#requests-filter").addEventListener("submit", function (ev) { ev.preventDefault(); loadRequests(); });
})();
