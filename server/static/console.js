// Keeps the counter's waiting counts current without reloading the page, so a
// half-chosen transfer or a focused button is never lost.
(() => {
  const table = document.getElementById("waiting");
  if (!table) return;
  let delay = 10000;
  async function poll() {
    try {
      const reply = await fetch(`/api/v1/branches/${table.dataset.branch}/queue`, { cache: "no-store" });
      if (!reply.ok) throw new Error(reply.status);
      const queue = await reply.json();
      table.querySelectorAll("td[data-service]").forEach((cell) => {
        const state = queue[cell.dataset.service];
        const text = String(state ? state.waiting : 0);
        if (cell.textContent !== text) cell.textContent = text;
      });
      delay = 10000;
    } catch (e) {
      delay = Math.min(delay * 2, 60000);
    }
    setTimeout(poll, delay);
  }
  setTimeout(poll, delay);
})();
