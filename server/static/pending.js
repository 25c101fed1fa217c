// A ticket not yet synced from its kiosk: look for it, backing off, and show it
// in place as soon as the server has it (the ticket page's body replaces this
// one's, and its script starts: no reload, no navigation). Once the
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

  async function showTicket() {  // the page this address gives now, swapped in
    const reply = await fetch(location.href, { cache: "no-store" });
    if (!reply.ok) throw new Error(reply.status);
    const page = new DOMParser().parseFromString(await reply.text(), "text/html");
    if (!page.querySelector("main[data-token]")) throw new Error("not the ticket yet");
    document.documentElement.lang = page.documentElement.lang;
    document.title = page.title;
    document.body.replaceWith(page.body);
    for (const parsed of document.body.querySelectorAll("script[src]")) {
      const script = document.createElement("script");  // parsed scripts never run
      script.src = parsed.src;
      script.async = false;  // in the page's order (alerts.js before ticket.js)
      parsed.replaceWith(script);
    }
  }

  async function look() {
    try {
      const reply = await fetch(`/api/v1/tickets/${main.dataset.watch}?since=${since}`,
                                { cache: "no-store" });
      if (reply.ok) { await showTicket(); return; }
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
