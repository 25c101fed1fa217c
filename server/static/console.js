// Keeps the counter page current without reloading it, so a half-chosen
// transfer or a focused button is never lost: the branch's live stream (Server-
// Sent Events) where the browser has EventSource, else (or when the stream
// fails) a poll of the same state.
(() => {
  const table = document.getElementById("waiting");
  if (!table) return;
  const number = document.getElementById("current");
  const status = document.getElementById("current-status");
  let delay = 10000;
  let failures = 0;

  function show(state) {
    table.querySelectorAll("td[data-service]").forEach((cell) => {
      const text = String(state.waiting[cell.dataset.service] ?? 0);
      if (cell.textContent !== text) cell.textContent = text;
    });
    const current = state.current;
    const hadTicket = number.dataset.present === "true";
    if (Boolean(current) !== hadTicket) {
      location.reload();  // the buttons and the transfer form depend on it
      return;
    }
    if (current) {
      if (number.textContent !== current.number) number.textContent = current.number;
      if (status.textContent !== current.status) status.textContent = current.status;
    }
  }

  async function poll() {
    try {
      const reply = await fetch("/console/state", { cache: "no-store" });
      if (!reply.ok) throw new Error(reply.status);
      show(await reply.json());
      delay = 10000;
    } catch (e) {
      delay = Math.min(delay * 2, 60000);
    }
    setTimeout(poll, delay);
  }

  function follow() {
    const source = new EventSource("/console/events");
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

  if ("EventSource" in window) follow();
  else setTimeout(poll, delay);
})();
