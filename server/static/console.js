// The counter screen, live: the branch's stream (Server-Sent Events) where the
// browser has EventSource, else (or when the stream fails) a poll of the same
// state. Only the parts that change are redrawn, so a half-typed reason, a
// chosen ticket or a focused button is never lost. The forms are sent in the
// background (Accept: application/json); without this script they still work
// as plain forms. Single-letter shortcuts press the buttons that name them
// (aria-keyshortcuts), never while typing in a field.
(() => {
  const screen = document.getElementById("screen");
  if (!screen) return;
  const words = JSON.parse(document.getElementById("screen-words").textContent);
  let state = JSON.parse(document.getElementById("screen-state").textContent);
  let receivedAt = Date.now();
  let delay = 10000;
  let failures = 0;
  const $ = (id) => document.getElementById(id);
  const number = $("current");
  const actions = $("actions");
  const button = (action) => actions.querySelector(`button[value="${action}"]`);
  const fill = (text, values) =>
    Object.entries(values).reduce((t, [k, v]) => t.split(`{${k}}`).join(String(v)), text);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    for (const child of children) node.append(child);
    return node;
  }

  function marks(ticket) {
    const found = [];
    if (ticket.origin === "counter") found.push(words.counter_ticket);
    if (ticket.transfers) found.push(words.transferred);
    for (const note of ticket.notes || []) found.push(note);
    return found.map((text) => el("span", { class: "mark" }, text));
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function minutes(ticket) {
    const waited = ticket.waited_s + (Date.now() - receivedAt) / 1000;
    return fill(words.minutes, { minutes: Math.floor(waited / 60) });
  }

  function showLists(mine) {
    const lists = $("lists");
    const focused = document.activeElement && document.activeElement.dataset.ticket;
    const tables = mine.map((m) => {
      const caption = el("caption", {}, m.name);
      if (m.priority) caption.append(" ", el("span", { class: "mark" }, words.priority));
      const head = el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, lists.dataset.number || "#"),
        el("th", { scope: "col" }, lists.dataset.waited || ""),
        el("th", { scope: "col" }, lists.dataset.call || "")));
      const body = el("tbody");
      for (const t of m.tickets) {
        const choose = el("button", {
          type: "button", class: "small choose", "data-ticket": t.id, "data-number": t.number,
        }, fill(words.call_this, { number: t.number }));
        body.append(el("tr", { "data-ticket": t.id },
          el("th", { scope: "row" }, t.number, " ", ...marks(t)),
          el("td", { class: "waited", "data-waited": t.waited_s }, minutes(t)),
          el("td", {}, choose)));
      }
      const foot = el("tfoot", {}, el("tr", {},
        el("th", { scope: "row", colspan: "2" }, lists.dataset.total || ""),
        el("td", { "data-service": m.service }, String(m.waiting))));
      return el("table", { class: "waiting", "data-service": m.service }, caption, head, body, foot);
    });
    lists.replaceChildren(...tables);
    if (focused) {
      const again = lists.querySelector(`button[data-ticket="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    // the out-of-turn form's list: the same tickets, the chosen one kept
    const select = $("chosen-ticket");
    const chosen = select.value;
    const options = [el("option", { value: "" }, "—")];
    for (const m of mine) {
      for (const t of m.tickets) options.push(el("option", { value: t.id }, `${t.number} · ${m.name}`));
    }
    select.replaceChildren(...options);
    select.value = options.some((o) => o.value === chosen) ? chosen : "";
  }

  // first column headings, kept from the server's markup for the redraws
  (() => {
    const lists = $("lists");
    const heads = lists.querySelectorAll("thead th");
    if (heads.length >= 3) {
      lists.dataset.number = heads[0].textContent;
      lists.dataset.waited = heads[1].textContent;
      lists.dataset.call = heads[2].textContent;
    }
    const total = lists.querySelector("tfoot th");
    if (total) lists.dataset.total = total.textContent;
  })();

  function showOthers(others) {
    const body = $("others");
    body.replaceChildren(...others.map((o) => el("tr", {},
      el("th", { scope: "row" }, o.name),
      el("td", { "data-service": o.service }, String(o.waiting)))));
    $("no-others").hidden = others.length > 0;
  }

  // the call-backs: redrawn when they change; a focused button keeps its focus,
  // or (its request gone) the next request's, else the list's heading
  function showCallbacks(callbacks, csrf) {
    const list = $("callbacks");
    const active = document.activeElement;
    const item = active && active.closest ? active.closest("li[data-callback]") : null;
    const focused = item && list.contains(item)
      ? { id: item.dataset.callback, outcome: active.value,
          next: item.nextElementSibling && item.nextElementSibling.dataset.callback }
      : null;
    list.replaceChildren(...callbacks.map((c) => {
      const hidden = () => el("span", { class: "visually-hidden" }, ` ${c.phone_shown}`);
      const form = el("form", { method: "post", action: "/console/callback", class: "actions" },
        el("input", { type: "hidden", name: "csrf", value: csrf }),
        el("input", { type: "hidden", name: "callback", value: c.id }),
        el("input", { type: "hidden", name: "tries", value: String(c.tries) }),
        el("button", { type: "submit", name: "outcome", value: "reached", class: "done small" },
          words.reached, hidden()),
        el("button", { type: "submit", name: "outcome", value: "not_reached", class: "small" },
          words.not_reached, hidden()));
      const meta = el("p", {
        class: "meta", "data-cb-waited": String(c.waited_s), "data-tries": String(c.tries),
        "data-most": String(c.max_tries), "data-service": c.service || "",
      });
      meta.textContent = callbackMeta(meta, 0);
      return el("li", { "data-callback": c.id },
        el("p", { class: "phone" }, el("a", { href: `tel:${c.phone}`, dir: "ltr" }, c.phone_shown)),
        el("p", { class: "reason" }, c.reason),
        meta, form);
    }));
    setText($("callbacks-count"), String(callbacks.length));
    $("no-callbacks").hidden = callbacks.length > 0;
    if (!focused) return;
    const again = (id) => list.querySelector(`li[data-callback="${CSS.escape(id)}"]`);
    const same = again(focused.id);
    if (same) same.querySelector(`button[value="${focused.outcome}"]`).focus();
    else if (focused.next && again(focused.next)) again(focused.next).querySelector("button").focus();
    else $("callbacks-title").focus();
  }

  function callbackMeta(node, elapsed) {
    const waited = Number(node.dataset.cbWaited) + elapsed;
    const text = fill(words.callback_meta, {
      minutes: Math.floor(waited / 60), tries: node.dataset.tries, most: node.dataset.most,
    });
    return node.dataset.service ? `${text} · ${node.dataset.service}` : text;
  }

  let lastLists = "";
  let lastOthers = "";
  let lastCallbacks = JSON.stringify(state.callbacks || []);

  function show(next) {
    state = next;
    receivedAt = Date.now();
    const current = next.current;
    number.dataset.present = current ? "true" : "false";
    setText(number, current ? current.number : "—");
    setText($("current-status"), current
      ? `${words[current.status] || current.status} · ${current.service_name}`
      : words.free);
    $("current-marks").replaceChildren(...(current ? marks(current) : []));
    for (const action of ["recall", "start", "served"]) button(action).disabled = !current;
    $("service").disabled = !current;
    $("transfer-form").querySelector("button").disabled = !current;
    const paused = next.state === "paused";
    setText($("counter-state"), paused ? words.paused : words.open);
    $("counter-state").className = `state-${next.state}`;
    $("pause").hidden = paused;
    $("resume").hidden = !paused;
    if (paused) button("call").setAttribute("aria-disabled", "true");
    else button("call").removeAttribute("aria-disabled");
    const lists = JSON.stringify(next.mine);
    if (lists !== lastLists) {
      lastLists = lists;
      showLists(next.mine);
    }
    const others = JSON.stringify(next.others);
    if (others !== lastOthers) {
      lastOthers = others;
      showOthers(next.others);
    }
    let summary = "";
    if (next.waiting_mine === 0) summary = next.waiting_others ? words.nobody_mine : words.nobody;
    if (next.waiting_others) summary += ` ${fill(words.others, { count: next.waiting_others })}`;
    setText($("summary"), summary.trim());
    const callbacks = JSON.stringify(next.callbacks || []);
    if (callbacks !== lastCallbacks) {
      lastCallbacks = callbacks;
      showCallbacks(next.callbacks || [], actions.querySelector("input[name=csrf]").value);
    }
    const sharing = $("sharing");
    sharing.hidden = !next.sharing.length;
    if (next.sharing.length) setText(sharing, fill(words.sharing, { names: next.sharing.join(", ") }));
    tick();
    screen.dataset.live = "true";
  }

  // the clock-driven parts: the no-show countdown, the undo's, the waits
  function tick() {
    const elapsed = (Date.now() - receivedAt) / 1000;
    const current = state.current;
    const noShow = button("no_show");
    const grace = current ? Math.ceil(current.no_show_in_s - elapsed) : 0;
    noShow.disabled = !current || grace > 0;
    const hint = $("no-show-hint");
    if (!hint.dataset.rule) hint.dataset.rule = hint.textContent;
    setText(hint, current && grace > 0 ? fill(words.no_show_in, { seconds: grace }) : hint.dataset.rule);
    const undo = $("undo");
    const left = state.undo ? Math.ceil(state.undo.seconds - elapsed) : 0;
    undo.hidden = left <= 0;
    if (left > 0) setText(undo, fill(words.undo, { number: state.undo.number, seconds: left }));
    document.querySelectorAll("#callbacks .meta").forEach((node) => {
      setText(node, callbackMeta(node, elapsed));
    });
    document.querySelectorAll("td.waited").forEach((cell) => {
      const waited = Number(cell.dataset.waited) + elapsed;
      setText(cell, fill(words.minutes, { minutes: Math.floor(waited / 60) }));
    });
  }
  setInterval(tick, 1000);

  function flash(message, ok) {
    const node = $("flash");
    node.hidden = !message;
    node.classList.toggle("refused", !ok);
    setText(node, message);
  }

  async function refresh() {
    try {
      const reply = await fetch("/console/state?view=screen", { cache: "no-store" });
      if (reply.status === 401) { location.assign("/console/login"); return; }
      if (reply.ok) show(await reply.json());
    } catch (e) { /* the stream or the next poll brings it */ }
  }

  async function send(form, submitter) {
    const body = new URLSearchParams(new FormData(form, submitter));
    let reply;
    try {
      reply = await fetch(form.getAttribute("action"), {  // form.action: its "action" buttons
        method: "POST", body, headers: { Accept: "application/json" }, cache: "no-store",
      });
    } catch (e) {
      flash(words.offline, false);
      return;
    }
    if (reply.redirected && reply.url.includes("/console/login")) { location.assign(reply.url); return; }
    let answer;
    try { answer = await reply.json(); } catch (e) { flash(await reply.text(), false); return; }
    flash(answer.message, answer.ok);
    if (form.id === "desk-form" && answer.ok) {
      location.assign(`/console?msg=${encodeURIComponent(answer.message)}`);  // every word may change
      return;
    }
    if (answer.ok && form.id === "call-chosen") form.reset();
    if (answer.issued) {
      $("issued").hidden = false;
      setText($("issued-number"), answer.issued.number);
      setText($("issued-text"), answer.message);
    }
    await refresh();
  }

  for (const id of ["actions", "transfer-form", "issue-form", "call-chosen", "desk-form"]) {
    const form = $(id);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      send(form, event.submitter);
    });
  }

  $("callbacks").addEventListener("submit", (event) => {
    event.preventDefault();
    send(event.target, event.submitter);
  });

  // a row's button chooses its ticket for the out-of-turn call and asks why
  $("lists").addEventListener("click", (event) => {
    const chosen = event.target.closest("button.choose");
    if (!chosen) return;
    $("chosen-ticket").value = chosen.dataset.ticket;
    flash(fill(words.chosen, { number: chosen.dataset.number }), true);
    $("chosen-reason").focus();
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
    const target = event.target;
    if (target.closest && target.closest("input, select, textarea, [contenteditable], summary")) return;
    const key = event.key.length === 1 ? event.key.toUpperCase() : "";
    if (!key) return;
    const pressed = [...actions.querySelectorAll("button[aria-keyshortcuts]")].find(
      (b) => b.getAttribute("aria-keyshortcuts") === key && !b.hidden && !b.disabled);
    if (!pressed) return;
    event.preventDefault();
    pressed.click();
  });

  async function poll() {
    try {
      const reply = await fetch("/console/state?view=screen", { cache: "no-store" });
      if (!reply.ok) throw new Error(reply.status);
      show(await reply.json());
      delay = 10000;
    } catch (e) {
      delay = Math.min(delay * 2, 60000);
    }
    setTimeout(poll, delay);
  }

  function follow() {
    const source = new EventSource("/console/events?view=screen");
    source.onmessage = (message) => {
      failures = 0;
      show(JSON.parse(message.data));
    };
    source.onerror = () => {
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        setTimeout(poll, 0);
      }
    };
  }

  show(state);
  if ("EventSource" in window) follow();
  else setTimeout(poll, delay);
})();
