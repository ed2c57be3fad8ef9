// The dashboard updates itself: /api/status (what `pixcamd status --json` says) every 2 s.
// Names come from whoever syncs into the inbox: only ever set as text, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const two = (n) => String(n).padStart(2, "0");
  const when = (ts) => {  // as the server writes it: 2026-12-05 11:16:28, local time
    if (!ts) return "—";
    const d = new Date(ts * 1000);
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
      `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
  };
  // As the server's `printable` (pixcamd/daemon/events.py): a control or format character in
  // a synced file's name (a newline, U+202E that reverses the rest of the line) is shown
  // escaped, never obeyed — textContent keeps out HTML, not these.
  const ESCAPES = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };
  const HIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}]|(?! )\p{Zs}/gu;
  const printable = (value) => String(value).replace(HIDDEN, (c) => {
    if (ESCAPES[c]) return ESCAPES[c];
    const code = c.codePointAt(0);
    return code < 256 ? "\\x" + code.toString(16).padStart(2, "0")
      : "\\u" + code.toString(16).padStart(4, "0");
  });
  const text = (id, value) => { const el = $(id); if (el) el.textContent = value; };

  // what a screen reader hears when it changes (the live region #said): not the whole
  // dashboard every 2 s, and not what the page said when it was loaded
  const shown = (id) => ($(id).hidden ? "" : $(id).textContent.replace(/\s+/g, " ").trim());
  const summary = () => [shown("problem"), shown("fallback"),
    "daemon " + $("daemon").textContent,
    ...[...$("current").children].map((p) => p.textContent)].filter(Boolean).join(". ");
  let said = summary();
  const announce = () => {
    const now = summary();
    if (now !== said) { said = now; text("said", now); }
  };

  function render(s) {
    const problem = $("problem");
    problem.hidden = !s.error;
    if (s.error) { problem.textContent = s.error; return; }
    text("daemon", s.daemon);
    $("daemon").className = "state-" + s.daemon;
    const refused = s.refused
      ? `its last start (${when(s.refused.ts)}) was refused: ${s.refused.reason}` : "";
    const killed = `a stop was asked at ${when(s.stop_asked_at)} and it was killed before it ` +
      "ended (a stop timeout shorter than grace_time + 10 s)";
    const ended = !s.ended_unexpectedly ? ""
      : s.stop_asked_at ? killed : "it ended without stopping (a crash or a kill)";
    text("pid", s.pid ? `pid ${s.pid}, since ${when(s.started_at)}`
      : [ended, refused].filter(Boolean).join("; "));
    text("model", s.model || "—");
    text("platforms", (s.platforms || []).join("; "));
    $("fallback").hidden = !s.model_fallback;
    text("model-note", s.model_advice || s.model_note || "");
    text("queue", s.counts.queued + s.counts.processing);
    text("settling", s.settling ? `${s.settling} settling` : "");
    text("per-hour", `${s.last_hour.finished} photos`);
    text("mean", s.last_hour.mean_seconds ? `${s.last_hour.mean_seconds} s per photo` : "");
    const current = $("current");
    current.replaceChildren();
    for (const c of s.current) {
      const p = document.createElement("p");
      p.textContent = `protecting ${printable(c.path)} (attempt ${c.attempt})` +
        (s.current_step ? ` — step ${s.current_step}` : "");
      current.append(p);
    }
    for (const c of s.interrupted || []) {  // the daemon ended without stopping mid-photo
      const p = document.createElement("p");
      p.textContent = `interrupted: ${printable(c.path)} (attempt ${c.attempt}; again at the next start)`;
      current.append(p);
    }
    if (!current.children.length) { const p = document.createElement("p"); p.textContent = "idle"; current.append(p); }
    // no value: how many steps a photo takes is known only at its end (rounds escalate)
    $("step").hidden = !s.current.length;
    // the links are changed in place, not made anew: one that has the keyboard's focus
    // keeps it (Enter then follows it)
    const counts = $("counts");
    const links = [...counts.querySelectorAll("a")];
    const filter = { done: "protected", processing: "queued" };
    Object.entries(s.counts).forEach(([k, v], i) => {
      let a = links[i];
      if (!a) { a = document.createElement("a"); counts.append(a, " "); }
      a.href = "/photos?verdict=" + (filter[k] || k);
      a.textContent = `${k} ${v}`;
    });
    for (const a of links.slice(Object.keys(s.counts).length)) a.remove();
    const events = $("events");
    events.replaceChildren();
    for (const e of [...s.events].reverse()) {
      const li = document.createElement("li");
      li.className = "level-" + e.level;
      // a warning's level in words as the log writes it, not in red alone
      const level = e.level === "info" ? "" : e.level.toUpperCase() + " ";
      const line = `${level}${e.event} ${e.path || ""}${e.message ? ": " + e.message : ""}`;
      li.textContent = `${when(e.ts)} ${printable(line)}`;
      events.append(li);
    }
    text("updated", "Last update " + new Date().toLocaleTimeString() + ".");
  }

  async function poll() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      render(await response.json());
      announce();
    } catch (err) {
      // what the card said is no longer known: a `run` that served this page has stopped
      text("daemon", "unreachable");
      $("daemon").className = "state-unknown";
      text("pid", "");
      text("updated", "The page cannot reach pixcamd (" + err + "); trying again.");
      announce();
    }
    setTimeout(poll, 2000);
  }
  text("how", "Updates by itself every 2 s.");
  setTimeout(poll, 2000);
})();
