// Keeps the ticket page current: follows the ticket's live stream (Server-Sent
// Events) where the browser has EventSource, else (or when the stream fails)
// polls the ticket's JSON, backing off when the network fails; stops once the
// ticket is finished.
(() => {
  const main = document.querySelector("main[data-token]");
  if (!main) return;
  const token = main.dataset.token;
  const lang = document.documentElement.lang;  // the service's name in the page's language
  const words = JSON.parse(document.getElementById("words").textContent);
  const finished = new Set(["served", "no_show", "cancelled", "void"]);
  const $ = (id) => document.getElementById(id);
  const alerts = window.ticketAlerts ? window.ticketAlerts(main, words) : null;  // alerts.js
  let delay = 5000;
  let source = null;
  let failures = 0;  // stream errors since its last message

  function statusText(t) {  // as server/i18n.py status_text: every status has words
    return (words[t.status] || "").replace("{counter}", t.counter || "");
  }

  function waitText(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const minutes = Math.round(seconds / 60);
    return minutes < 1 ? words.now : words.minutes.replace("{minutes}", minutes);
  }

  function show(t) {
    if (t.status === "served" && main.dataset.status !== "served") {
      location.reload();  // the page now offers the feedback form
      return;
    }
    const status = $("status");
    const text = statusText(t);
    if (status.textContent !== text) status.textContent = text;
    status.className = "state state-" + t.status;
    main.dataset.status = t.status;
    const service = document.querySelector(".service");  // staff may move it to another queue
    if (t.service && service.textContent !== t.service) service.textContent = t.service;
    const place = $("location");  // where to go: the counter's room, else the service's
    if (place.textContent !== (t.location || "")) place.textContent = t.location || "";
    place.hidden = !t.location;
    $("queue").hidden = t.position === null;
    $("position").textContent = t.position ?? "";
    $("wait").textContent = waitText(t.estimated_wait_s);
    $("leave").hidden = t.status !== "waiting";
    if (alerts) {
      if (finished.has(t.status)) alerts.done();
      else alerts.update(t);
    }
  }

  async function poll() {
    try {
      const reply = await fetch(`/api/v1/tickets/${token}?lang=${lang}`, { cache: "no-store" });
      if (!reply.ok) throw new Error(reply.status);
      show(await reply.json());
      $("note").textContent = words.updated;
      delay = 5000;
    } catch (e) {
      $("note").textContent = words.offline;
      delay = Math.min(delay * 2, 60000);
    }
    if (!finished.has(main.dataset.status)) setTimeout(poll, delay);
  }

  $("leave").addEventListener("click", () => $("confirm").showModal());
  $("confirm-no").addEventListener("click", () => $("confirm").close());
  $("confirm-yes").addEventListener("click", async () => {
    $("confirm").close();
    const reply = await fetch(`/api/v1/tickets/${token}/cancel?lang=${lang}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    if (reply.ok) show(await reply.json());
  });

  function follow() {
    source = new EventSource(`/api/v1/tickets/${token}/events?lang=${lang}`);
    source.onmessage = (message) => {
      failures = 0;
      show(JSON.parse(message.data));
      $("note").textContent = words.updated;
      if (finished.has(main.dataset.status)) source.close();
    };
    source.onerror = () => {
      // A dropped stream reconnects by itself; one refused (an HTTP error, a proxy
      // that blocks it) or failing again and again is left for polling.
      failures += 1;
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        source = null;
        $("note").textContent = words.offline;
        setTimeout(poll, 0);
      }
    };
  }

  if (finished.has(main.dataset.status)) {
    if (alerts) alerts.done();
    return;
  }
  if ("EventSource" in window) follow();
  else setTimeout(poll, delay);
})();
