// A ticket not yet synced from its kiosk: look for it, backing off, and show it
// as soon as the server has it (no timed reload of the whole page).
(() => {
  const main = document.querySelector("main[data-watch]");
  if (!main) return;
  let delay = 5000;
  async function look() {
    try {
      const reply = await fetch(`/api/v1/tickets/${main.dataset.watch}`, { cache: "no-store" });
      if (reply.ok) { location.reload(); return; }
      delay = Math.min(delay * 1.5, 60000);
    } catch (e) {
      delay = Math.min(delay * 2, 60000);
    }
    setTimeout(look, delay);
  }
  setTimeout(look, delay);
})();
