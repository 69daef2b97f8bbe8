// common.js: what the admin dashboard and the user page share: the sign-in
// form, calls to the JSON APIs, DOM building, formatting and the usage chart.
// The token or key lives in sessionStorage only (gone when the tab closes),
// and goes in an Authorization header, never in a URL.
"use strict";

var AP = (function () {
  var storageKey = "";
  var onSignOut = null;

  function secret() {
    return sessionStorage.getItem(storageKey) || "";
  }

  // ApiError is a failed call: the gateway's message and status.
  function ApiError(status, message, code) {
    this.status = status;
    this.message = message;
    this.code = code || "";
  }
  ApiError.prototype = Object.create(Error.prototype);

  // api calls the gateway with the stored secret. opts: method, body (an
  // object, sent as JSON), raw (return the Response, for CSV), token (use
  // this one instead of the stored one). A 401 after sign-in signs out.
  async function api(path, opts) {
    opts = opts || {};
    var headers = { Authorization: "Bearer " + (opts.token || secret()) };
    var init = { method: opts.method || "GET", headers: headers, cache: "no-store", credentials: "omit" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    var res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "Cannot reach the gateway: " + e.message);
    }
    if (!res.ok) {
      var msg = res.status + " " + res.statusText, code = "";
      try {
        var body = await res.json();
        if (body && body.error) {
          msg = body.error.message || msg;
          code = body.error.code || "";
        }
      } catch (e) { /* not JSON: keep the status line */ }
      if (res.status === 429 && res.headers.get("Retry-After")) {
        msg += " (retry in " + res.headers.get("Retry-After") + " s)";
      }
      var err = new ApiError(res.status, msg, code);
      if (res.status === 401 && !opts.token && onSignOut) {
        signOut("Signed out: " + msg);
      }
      throw err;
    }
    if (opts.raw) return res;
    return res.json();
  }

  // el builds an element: el("td", {className: "x", onclick: f}, child...).
  // Children are nodes or text; null and undefined are skipped. Text is
  // never parsed as HTML.
  function el(tag, props) {
    var node = document.createElement(tag);
    for (var k of Object.keys(props || {})) {
      var v = props[k];
      if (v === undefined || v === null || v === false) continue;
      if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k in node && k !== "list" && k !== "type") node[k] = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (var i = 2; i < arguments.length; i++) append(node, arguments[i]);
    return node;
  }
  function append(node, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) child.forEach(function (c) { append(node, c); });
    else node.append(child.nodeType ? child : String(child));
  }
  function $(sel, root) { return (root || document).querySelector(sel); }

  // show writes a message into a status element: kind "" (info),
  // "busy" (loading) or "error".
  function show(node, text, kind) {
    node.textContent = text || "";
    node.className = "status" + (kind ? " " + kind : "");
    node.hidden = !text;
    node.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  // run shows "Loading…" in status while f runs, then clears it or shows
  // the error. It returns f's result, or undefined on error.
  async function run(status, f, busyText) {
    show(status, busyText || "Loading…", "busy");
    try {
      var out = await f();
      show(status, "");
      return out;
    } catch (e) {
      show(status, e.message || String(e), "error");
      return undefined;
    }
  }

  // signIn wires the page's sign-in form. check(secret) resolves when the
  // secret is good; ready() then shows the page.
  function signIn(opts) {
    storageKey = opts.storageKey;
    var form = $("#login"), input = $("#secret"), error = $("#login-error");
    var button = form.querySelector("button[type=submit]");
    function signedIn() {
      $("#login-view").hidden = true;
      $("#app").hidden = false;
      $("#signout").hidden = false;
      opts.ready();
    }
    onSignOut = function (message) {
      sessionStorage.removeItem(storageKey);
      $("#app").hidden = true;
      $("#signout").hidden = true;
      $("#login-view").hidden = false;
      if (message) show(error, message, "error");
      if (opts.signedOut) opts.signedOut();
      input.focus();
    };
    async function attempt(value) {
      button.disabled = true;
      show(error, "Checking…", "busy");
      try {
        await opts.check(value);
        sessionStorage.setItem(storageKey, value);
        show(error, "");
        input.value = "";
        signedIn();
      } catch (e) {
        // A stored secret is dropped once refused, not when the gateway
        // cannot be reached: a reload tries it again.
        if (e.status === 401) sessionStorage.removeItem(storageKey);
        show(error, e.message || String(e), "error");
        input.select();
      } finally {
        button.disabled = false;
      }
    }
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = input.value.trim();
      if (value) attempt(value);
      else show(error, "Enter the " + opts.what + ".", "error");
    });
    $("#signout").addEventListener("click", function () { signOut(""); });
    if (secret()) attempt(secret());
    else input.focus();
  }

  function signOut(message) {
    if (onSignOut) onSignOut(message);
  }

  // copyButton copies text (or what text() returns) to the clipboard.
  function copyButton(text, label) {
    var b = el("button", { type: "button", className: "copy", textContent: label || "Copy" });
    b.addEventListener("click", async function () {
      var value = typeof text === "function" ? text() : text;
      try {
        await navigator.clipboard.writeText(value);
        b.textContent = "Copied";
      } catch (e) {
        b.textContent = "Select and copy";
      }
      setTimeout(function () { b.textContent = label || "Copy"; }, 1500);
    });
    return b;
  }

  // confirmButton asks for a second click before it runs action.
  function confirmButton(label, question, action, className) {
    var b = el("button", { type: "button", className: className || "", textContent: label });
    var armed = false, timer = 0;
    b.addEventListener("click", function () {
      if (!armed) {
        armed = true;
        b.textContent = question;
        b.classList.add("danger");
        timer = setTimeout(function () { armed = false; b.textContent = label; b.classList.remove("danger"); }, 5000);
        return;
      }
      clearTimeout(timer);
      armed = false;
      b.textContent = label;
      b.classList.remove("danger");
      action(b);
    });
    return b;
  }

  // Formatting.
  function num(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"); }
  function usd(n) {
    if (n === null || n === undefined || n === "") return "";
    n = Number(n);
    return "$" + (n !== 0 && n < 0.01 ? n.toPrecision(2) : n.toFixed(2));
  }
  function short(n) {
    n = Number(n);
    if (n >= 1e9) return (n / 1e9).toFixed(n >= 1e10 ? 0 : 1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(n >= 1e7 ? 0 : 1) + "M";
    if (n >= 1e3) return (n / 1e3).toFixed(n >= 1e4 ? 0 : 1) + "k";
    return String(n);
  }
  // when shows a time in UTC, to the minute, or to the second.
  function when(iso, seconds) {
    if (!iso) return "";
    var d = new Date(iso);
    return d.toISOString().slice(0, seconds ? 19 : 16).replace("T", " ") + " UTC";
  }
  function day(d) { return d.toISOString().slice(0, 10); }
  // lastDays returns [from, to] covering the n days up to today, UTC.
  function lastDays(n) {
    var to = new Date();
    var from = new Date(to.getTime() - (n - 1) * 864e5);
    return [day(from), day(to)];
  }
  function query(params) {
    var q = new URLSearchParams();
    for (var k in params) if (params[k]) q.set(k, params[k]);
    var s = q.toString();
    return s ? "?" + s : "";
  }

  // limitsText and budgetText describe a policy's limits and budget.
  function limitsText(l) {
    if (!l) return "";
    var parts = [];
    if (l.rpm) parts.push(num(l.rpm) + " req/min");
    if (l.tpm) parts.push(num(l.tpm) + " tok/min");
    if (l.max_parallel) parts.push(num(l.max_parallel) + " parallel");
    return parts.join(", ");
  }
  function budgetText(b) {
    if (!b) return "";
    var parts = [];
    if (b.usd) parts.push(usd(b.usd));
    if (b.tokens) parts.push(num(b.tokens) + " tokens");
    if (b.requests) parts.push(num(b.requests) + " requests");
    if (!parts.length) return "";
    return parts.join(", ") + " per " + (b.period || "month");
  }
  // leftText describes what is left of a budget (spend.left).
  function leftText(left) {
    if (!left) return "";
    var parts = [];
    if (left.budget_usd !== undefined) parts.push(usd(left.budget_usd));
    if (left.budget_tokens !== undefined) parts.push(num(left.budget_tokens) + " tokens");
    if (left.budget_requests !== undefined) parts.push(num(left.budget_requests) + " requests");
    if (!parts.length) return "";
    var s = parts.join(", ") + " left";
    if (left.resets_at) s += "; resets " + when(left.resets_at);
    return s;
  }

  // Chart colours, one per model in turn.
  var palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#f97316", "#64748b"];

  // usageChart draws tokens per day, stacked by model, from usage rows
  // ({date, model, total_tokens}) over the days from..to, into box. It
  // returns the models drawn, largest first; box.dataset.models holds them
  // too.
  var charts = new WeakMap();
  function usageChart(box, rows, from, to) {
    var old = charts.get(box);
    if (old) old.destroy();
    box.textContent = "";
    var days = [], index = Object.create(null);
    for (var t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z"); t += 864e5) {
      index[new Date(t).toISOString().slice(0, 10)] = days.length;
      days.push(t / 1000);
    }
    // Without a prototype: a model may be named __proto__.
    var byModel = Object.create(null), totals = Object.create(null);
    rows.forEach(function (r) {
      var i = index[r.date];
      if (i === undefined) return;
      if (!byModel[r.model]) { byModel[r.model] = new Array(days.length).fill(0); totals[r.model] = 0; }
      byModel[r.model][i] += r.total_tokens || 0;
      totals[r.model] += r.total_tokens || 0;
    });
    // The largest model at the bottom of each bar.
    var models = Object.keys(byModel).sort(function (a, b) { return totals[b] - totals[a]; });
    box.dataset.models = models.join(",");
    if (!models.length) {
      box.append(el("p", { className: "empty" }, "No usage in this range."));
      return models;
    }
    // Stacked: series k holds the sum of models 0..k, drawn from the top
    // one down so each bar shows every layer.
    var stacked = [], sum = new Array(days.length).fill(0);
    models.forEach(function (m) {
      sum = sum.map(function (v, i) { return v + byModel[m][i]; });
      stacked.push(sum);
    });
    var order = models.map(function (m, k) { return k; }).reverse();
    var bars = uPlot.paths.bars({ size: [0.7, 48] });
    var series = [{ label: "Day", value: function (u, v) { return v == null ? "" : new Date(v * 1000).toISOString().slice(0, 10); } }];
    order.forEach(function (k) {
      var c = palette[k % palette.length];
      series.push({
        label: models[k], stroke: c, fill: c, width: 0, paths: bars, points: { show: false },
        value: function (u, v, si, di) { return di == null ? "" : num(byModel[models[k]][di]); },
      });
    });
    var data = [days].concat(order.map(function (k) { return stacked[k]; }));
    var opts = {
      width: Math.max(box.clientWidth, 280), height: 260,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { x: { time: true, range: function () { return [days[0] - 43200, days[days.length - 1] + 43200]; } } },
      axes: [{}, { size: 56, values: function (u, vals) { return vals.map(short); } }],
      series: series,
      legend: { live: true },
      cursor: { points: { show: false } },
    };
    var chart = new uPlot(opts, data, box);
    charts.set(box, chart);
    return models;
  }
  window.addEventListener("resize", function () {
    document.querySelectorAll(".chart").forEach(function (box) {
      var c = charts.get(box);
      if (c) c.setSize({ width: Math.max(box.clientWidth, 280), height: 260 });
    });
  });

  // tabs shows one panel at a time; buttons carry data-tab="<panel id>".
  function tabs(onShow) {
    var buttons = document.querySelectorAll("[data-tab]");
    function select(id) {
      buttons.forEach(function (b) {
        var on = b.dataset.tab === id;
        b.setAttribute("aria-selected", on ? "true" : "false");
        document.getElementById(b.dataset.tab).hidden = !on;
      });
      onShow(id);
    }
    buttons.forEach(function (b) {
      b.addEventListener("click", function () { select(b.dataset.tab); });
    });
    return select;
  }

  return {
    api: api, el: el, $: $, show: show, run: run, signIn: signIn, signOut: signOut,
    copyButton: copyButton, confirmButton: confirmButton, tabs: tabs,
    num: num, usd: usd, when: when, day: day, lastDays: lastDays, query: query,
    limitsText: limitsText, budgetText: budgetText, leftText: leftText, usageChart: usageChart,
  };
})();
