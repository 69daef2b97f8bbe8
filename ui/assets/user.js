// user.js: the user page: a key's details, how to use it, what it may
// still spend, its usage, and a new key, from /me, /me/usage and /me/reset.
"use strict";

(function () {
  var el = AP.el, $ = AP.$, api = AP.api;
  var me = null;
  var baseURL = location.origin + "/v1";
  var snippet = "curl";

  AP.signIn({
    storageKey: "aiproxy.key",
    what: "API key",
    check: function (key) { return api("/me", { token: key }).then(function (m) { me = m; }); },
    ready: function () { render(); loadUsage(); },
    signedOut: function () { me = null; $("#issued").hidden = true; $("#issued").textContent = ""; },
  });

  function render() {
    $("#me-name").textContent = me.name;
    var facts = $("#me-facts");
    facts.replaceChildren();
    fact(facts, "Key", el("code", {}, me.key_hint));
    fact(facts, "Created", AP.when(me.created_at));
    var expired = me.expires_at && Date.parse(me.expires_at) <= Date.now();
    fact(facts, "Expires", me.expires_at ? (expired ? "expired " : "") + AP.when(me.expires_at) : "never");
    $("#base-url").textContent = baseURL;
    $("#base-url-copy").replaceChildren(AP.copyButton(baseURL));
    $("#export-copy").replaceChildren(AP.copyButton(function () {
      return "export OPENAI_API_KEY=" + sessionStorage.getItem("aiproxy.key");
    }, "Copy with my key"));
    showSnippet();
    renderSpend();
    if (document.body.dataset.selfReset === "true") {
      $("#reset-box").hidden = false;
      $("#reset-button").replaceChildren(AP.confirmButton("Get a new key", "Really replace my key?", resetKey, "reset"));
    }
  }

  function fact(list, name, value) {
    list.append(el("dt", {}, name), el("dd", {}, value));
  }

  // model is one model the key may call, for the snippets.
  function model() {
    var list = (me.spend && me.spend.effective && me.spend.effective.models) || [];
    for (var i = 0; i < list.length; i++) if (list[i].indexOf("*") < 0) return list[i];
    return "gpt-4o-mini";
  }

  var snippets = {
    curl: function (m) {
      return "curl " + baseURL + "/chat/completions \\\n" +
        "  -H \"Authorization: Bearer $OPENAI_API_KEY\" \\\n" +
        "  -H \"Content-Type: application/json\" \\\n" +
        "  -d '{\"model\":\"" + m + "\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}'";
    },
    python: function (m) {
      return "# pip install openai\nfrom openai import OpenAI\n\n" +
        "client = OpenAI(base_url=\"" + baseURL + "\")  # key from OPENAI_API_KEY\n" +
        "reply = client.chat.completions.create(\n" +
        "    model=\"" + m + "\",\n    messages=[{\"role\": \"user\", \"content\": \"Hello\"}],\n)\n" +
        "print(reply.choices[0].message.content)";
    },
    node: function (m) {
      return "// npm install openai\nimport OpenAI from \"openai\";\n\n" +
        "const client = new OpenAI({ baseURL: \"" + baseURL + "\" }); // key from OPENAI_API_KEY\n" +
        "const reply = await client.chat.completions.create({\n" +
        "  model: \"" + m + "\",\n  messages: [{ role: \"user\", content: \"Hello\" }],\n});\n" +
        "console.log(reply.choices[0].message.content);";
    },
  };

  function showSnippet() {
    var text = snippets[snippet](model());
    $("#snippet").textContent = text;
    $("#snippet-copy").replaceChildren(AP.copyButton(text));
    document.querySelectorAll("[data-snippet]").forEach(function (b) {
      b.setAttribute("aria-selected", b.dataset.snippet === snippet ? "true" : "false");
    });
  }
  document.querySelectorAll("[data-snippet]").forEach(function (b) {
    b.addEventListener("click", function () { snippet = b.dataset.snippet; showSnippet(); });
  });

  function renderSpend() {
    var list = $("#spend"), spend = me.spend || {}, eff = spend.effective || {}, left = spend.left || {};
    list.replaceChildren();
    fact(list, "Models", eff.models && eff.models.length ? eff.models.join(", ") : "any");
    var limits = AP.limitsText(eff.limits);
    fact(list, "Rate limits", limits || "none");
    if (left.requests_this_minute !== undefined || left.tokens_this_minute !== undefined) {
      var now = [];
      if (left.requests_this_minute !== undefined) now.push(AP.num(left.requests_this_minute) + " requests");
      if (left.tokens_this_minute !== undefined) now.push(AP.num(left.tokens_this_minute) + " tokens");
      fact(list, "Left this minute", now.join(", "));
    }
    fact(list, "Budget", AP.budgetText(eff.budget) || "none");
    var budgetLeft = AP.leftText(left);
    if (budgetLeft) fact(list, "Left", budgetLeft);
  }

  async function resetKey() {
    var issued = await AP.run($("#reset-status"), function () {
      return api("/me/reset", { method: "POST" });
    }, "Getting a new key…");
    if (!issued) return;
    sessionStorage.setItem("aiproxy.key", issued.key);
    me.key_hint = issued.key_hint;
    var box = $("#issued");
    box.replaceChildren(
      el("p", {}, "Your new key. Copy it now: it is shown only this once, and the old key no longer works."),
      el("div", { className: "keybox" }, el("code", { id: "issued-key" }, issued.key), AP.copyButton(issued.key)),
      el("button", { type: "button", className: "secondary", onclick: function () { box.hidden = true; box.textContent = ""; } }, "Done"));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
    render();
  }

  (function () {
    var range = AP.lastDays(30), form = $("#usage-filter");
    form.from.value = range[0];
    form.to.value = range[1];
  })();

  async function loadUsage() {
    var form = $("#usage-filter");
    var rows = await AP.run($("#usage-status"), function () {
      return api("/me/usage" + AP.query({ from: form.from.value, to: form.to.value }));
    });
    if (!rows) return;
    AP.usageChart($("#usage-chart"), rows.data, form.from.value, form.to.value);
    var by = Object.create(null); // a model may be named __proto__
    rows.data.forEach(function (r) {
      var s = by[r.model] || (by[r.model] = { model: r.model, requests: 0, tokens: 0, cost: 0 });
      s.requests += r.requests || 0;
      s.tokens += r.total_tokens || 0;
      s.cost += Number(r.cost_usd || 0);
    });
    var body = $("#usage-models tbody");
    body.replaceChildren();
    Object.values(by).sort(function (a, b) { return b.tokens - a.tokens; }).forEach(function (s) {
      body.append(el("tr", {},
        el("td", {}, s.model),
        el("td", { className: "n" }, AP.num(s.requests)),
        el("td", { className: "n" }, AP.num(s.tokens)),
        el("td", { className: "n" }, s.cost ? AP.usd(s.cost) : "")));
    });
  }
  $("#usage-filter").addEventListener("submit", function (ev) { ev.preventDefault(); loadUsage(); });
})();
