// The waiting-room display: follows /display/events (Server-Sent Events), shows
// every call large, one after another, and plays its announcement (a chime,
// then the call in each language) without ever cutting one off.
"use strict";

(() => {
  const STUCK_MS = 30000; // an announcement that never ends is given up
  const LANGUAGE_EVERY_MS = 8000; // labels and service names change language
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const POLL_MS = 5000; // when the server refuses a stream (503), poll instead
  const SPOKEN_KEPT = 300;

  const $ = (id) => document.getElementById(id);
  const voice = $("voice");
  const api = {
    minShowMs: 5000, // each new call has the big panel at least this long
    skipTo: 0, // seconds before the end to start playing (a test of 1,000 calls)
    played: [], // the last announcements played to their end: {id, src, duration}
    playedCount: 0,
    shown: 0,
    state: null,
  };
  window.vuoroDisplay = api;
  Object.defineProperty(api, "idle", { get: () => !presenting && !pending.length });

  let state = null;
  let offset = 0; // server clock minus this one
  let languageIndex = 0;
  const seen = new Set(); // call ids this page has taken in
  const pending = []; // calls waiting for their moment on screen
  let presenting = null;
  let soundBlocked = false;
  let offlineSince = null;
  let retryMs = RETRY_FIRST_MS;
  let source = null;
  let pollTimer = null;

  const spoken = (() => {
    // ids already announced, kept across reloads: a restart never replays a call
    try {
      return JSON.parse(localStorage.getItem("vuoro-spoken") || "[]");
    } catch (_) {
      return [];
    }
  })();
  function markSpoken(id) {
    spoken.push(id);
    spoken.splice(0, Math.max(0, spoken.length - SPOKEN_KEPT));
    try {
      localStorage.setItem("vuoro-spoken", JSON.stringify(spoken));
    } catch (_) {
      /* storage full or off: the page's own memory still holds */
    }
  }

  function words() {
    const language = state.languages[languageIndex % state.languages.length];
    return [language, state.words[language]];
  }

  function minutesText(service, w) {
    if (!service.waiting || service.estimated_wait_s === null) return w.no_wait;
    const minutes = Math.max(1, Math.round(service.estimated_wait_s / 60));
    return w.wait.replace("{minutes}", String(minutes));
  }

  function renderLabels() {
    if (!state) return;
    const [language, w] = words();
    document.documentElement.lang = language;
    $("branch").textContent = state.branch;
    $("now-title").textContent = w.now_calling;
    $("history-title").textContent = w.earlier;
    $("now-counter-word").textContent = w.counter;
    $("idle").textContent = w.no_calls;
    const shown = presenting || state.calls[0];
    $("now-place").textContent = (shown && shown.location && shown.location[language]) || "";
    const list = $("services");
    list.replaceChildren(
      ...state.services.map((service) => {
        const item = document.createElement("li");
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = service.names[language] || "";
        const count = document.createElement("span");
        count.className = "waiting";
        count.textContent = `${service.waiting} ${w.waiting}`;
        const wait = document.createElement("span");
        wait.className = "wait";
        wait.textContent = minutesText(service, w);
        item.append(name, count, wait);
        return item;
      }),
    );
    const message = $("message");
    message.textContent = state.message;
    message.hidden = !state.message;
    renderOffline();
    $("blocked").textContent = w.sound_blocked;
  }

  function renderHistory() {
    const current = presenting || (state && state.calls[0]);
    const tickets = new Set(current ? [current.ticket] : []);
    const rows = [];
    for (const call of state ? state.calls : []) {
      if (tickets.has(call.ticket)) continue;
      tickets.add(call.ticket);
      const row = document.createElement("li");
      const number = document.createElement("span");
      number.className = "number";
      number.textContent = call.number;
      const counter = document.createElement("span");
      counter.className = "counter";
      counter.textContent = call.counter;
      row.append(number, counter);
      rows.push(row);
      if (rows.length >= 8) break;
    }
    $("history").replaceChildren(...rows);
  }

  function showNow(call, fresh) {
    const panel = $("now");
    $("now-number").textContent = call ? call.number : "";
    $("now-counter").textContent = call ? call.counter : "";
    const language = state ? words()[0] : "";
    $("now-place").textContent = (call && call.location && call.location[language]) || "";
    panel.hidden = !call;
    $("idle").hidden = Boolean(call);
    panel.dataset.callId = call ? String(call.id) : "";
    if (fresh) {
      panel.classList.remove("fresh");
      void panel.offsetWidth; // restart the blink
      panel.classList.add("fresh");
      api.shown += 1;
    }
    renderHistory();
  }

  function present() {
    if (presenting || !pending.length) return;
    presenting = pending.shift();
    const call = presenting;
    const started = Date.now();
    showNow(call, true);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(stuck);
      voice.onended = voice.onerror = null;
      setTimeout(
        () => {
          presenting = null;
          $("now").classList.remove("fresh"); // its moment is over
          if (!pending.length) showNow(state.calls[0] || call, false);
          present();
        },
        Math.max(0, api.minShowMs - (Date.now() - started)),
      );
    };
    const stuck = setTimeout(finish, STUCK_MS);
    const age = Date.now() + offset - call.at_ms;
    if (age > state.speak_within_s * 1000 || spoken.includes(call.id)) {
      finish();
      return;
    }
    voice.onended = () => {
      api.playedCount += 1;
      api.played.push({ id: call.id, src: voice.currentSrc, duration: voice.duration });
      api.played.splice(0, Math.max(0, api.played.length - 20));
      finish();
    };
    voice.onerror = finish;
    voice.src = call.sound;
    voice.volume = Math.min(1, Math.max(0, state.volume / 100));
    voice.onloadedmetadata = () => {
      if (api.skipTo > 0 && voice.duration > api.skipTo) {
        voice.currentTime = voice.duration - api.skipTo;
      }
    };
    markSpoken(call.id);
    const playing = voice.play();
    if (playing) {
      playing.then(
        () => setBlocked(false),
        (error) => {
          if (error && error.name === "NotAllowedError") setBlocked(true);
          finish();
        },
      );
    }
  }

  function setBlocked(blocked) {
    soundBlocked = blocked;
    $("blocked").hidden = !blocked;
  }

  function apply(next) {
    const first = state === null;
    state = next;
    api.state = next;
    offset = next.server_time_ms - Date.now();
    if (languageIndex >= next.languages.length) languageIndex = 0;
    // oldest first: calls made together are shown and spoken in the order made
    const fresh = next.calls.filter((call) => !seen.has(call.id)).reverse();
    const now = Date.now() + offset;
    for (const call of fresh) {
      seen.add(call.id);
      if (seen.size > SPOKEN_KEPT * 4) seen.delete(seen.values().next().value); // days on
      // a page that (re)starts shows what was called; of those, only a young
      // call it has not spoken yet (it restarted mid-call) gets its turn
      const young = now - call.at_ms <= next.speak_within_s * 1000;
      if (!first || (young && !spoken.includes(call.id))) pending.push(call);
    }
    renderLabels();
    if (first) tick();
    if (!presenting) showNow(next.calls[0] || null, false);
    else renderHistory();
    present();
  }

  function renderOffline() {
    const banner = $("offline");
    if (offlineSince === null || !state) {
      banner.hidden = true;
      return;
    }
    const [, w] = words();
    const time = new Date(offlineSince + offset).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      timeZone: state.timezone || undefined,
    });
    banner.textContent = w.offline.replace("{time}", time);
    banner.hidden = false;
  }

  function online() {
    retryMs = RETRY_FIRST_MS;
    if (offlineSince !== null) {
      offlineSince = null;
      renderOffline();
    }
  }

  function offline() {
    if (offlineSince === null) offlineSince = Date.now();
    renderOffline();
  }

  function later(fn) {
    // back-off with jitter: a hundred displays do not come back in step
    const wait = retryMs * (0.5 + Math.random());
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    setTimeout(fn, wait);
  }

  async function poll() {
    pollTimer = null;
    let answer;
    try {
      answer = await fetch("/display/state", { cache: "no-store", credentials: "same-origin" });
    } catch (_) {
      offline();
      later(connect);
      return;
    }
    if (answer.status === 401) {
      location.replace("/display"); // revoked: the pairing form
      return;
    }
    if (!answer.ok) {
      offline();
      later(connect);
      return;
    }
    online();
    apply(await answer.json());
    return answer;
  }

  function connect() {
    if (source) source.close();
    source = new EventSource("/display/events");
    source.onmessage = (message) => {
      online();
      apply(JSON.parse(message.data));
    };
    source.onerror = async () => {
      // EventSource would retry on its own at a fixed pace; ours backs off,
      // and tells a refused stream (poll) from a server away (banner)
      source.close();
      source = null;
      const answered = await poll();
      if (answered && !pollTimer) {
        pollTimer = setTimeout(() => {
          pollTimer = null;
          connect();
        }, POLL_MS);
      }
    };
  }

  function tick() {
    window.vuoroDisplayAlive = Date.now(); // the appliance's watchdog reads this
    if (!state) return;
    $("clock").textContent = new Date(Date.now() + offset).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      timeZone: state.timezone || undefined,
    });
  }

  document.addEventListener("click", () => {
    // a browser that blocked sound lets the page play after one tap on it
    // (the next announcement is heard; the banner comes back if it is not)
    if (soundBlocked) setBlocked(false);
  });
  setInterval(tick, 1000);
  setInterval(() => {
    if (!state || state.languages.length < 2) return;
    languageIndex = (languageIndex + 1) % state.languages.length;
    renderLabels();
  }, LANGUAGE_EVERY_MS);
  tick();
  connect();
})();
