// A ticket not yet synced from its kiosk: look for it, backing off, and show it
// as soon as the server has it (no timed reload of the whole page). Once the
// server can tell that no kiosk still holds it (every kiosk has reported an
// empty outbox since our first look), say plainly that there is no such
// ticket, and keep looking now and then in case it turns up after all.
(() => {
  const main = document.querySelector("main[data-watch]");
  if (!main) return;
  const since = encodeURIComponent(main.dataset.since);
  let gone = main.dataset.gone === "true";
  let delay = gone ? 60000 : 5000;

  function sayGone() {
    gone = true;
    document.getElementById("message-title").textContent = main.dataset.goneTitle;
    document.getElementById("message-text").textContent = main.dataset.goneText;
    document.title = main.dataset.goneTitle;
  }

  async function look() {
    try {
      const reply = await fetch(`/api/v1/tickets/${main.dataset.watch}?since=${since}`,
                                { cache: "no-store" });
      if (reply.ok) { location.reload(); return; }
      const body = await reply.json();
      if (body.may_arrive === false && !gone) sayGone();
      delay = gone ? 60000 : Math.min(delay * 1.5, 60000);
    } catch (e) {
      delay = Math.min(delay * 2, 60000);
    }
    setTimeout(look, delay);
  }
  setTimeout(look, delay);
})();
