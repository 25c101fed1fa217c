// Alerts the holder of a ticket whose phone is in a pocket, so nobody has to
// watch the page: when the turn nears (few ahead or few minutes left), when the
// ticket is called, and again, distinctly, when it is recalled. Always by the
// tab's title and icon and a banner on the page; with sound and vibration once
// the holder turned them on (browsers allow sound only after a tap).
//
// ticket.js calls window.ticketAlerts(main, words) once, then .update(ticket)
// with each state of the ticket (its public JSON) and .done() once it is over.
// What was alerted is kept per ticket in localStorage, so a reload does not
// alert again; a recall is told from the first call by its new `called_at`.
(() => {
  const PREFIX = "vuoro.alerts.";           // + the ticket's token: what was alerted
  const SOUND_KEY = PREFIX + "sound";       // "on": the holder asked for sound and vibration
  const KEEP_MS = 2 * 24 * 3600 * 1000;     // a ticket is of one day: older memos go
  const BLINK_MS = 1000;                    // the hidden tab's title alternates this often

  //: ms on, off, on, … (navigator.vibrate): a nudge, a long buzz, a rapid double triple
  const VIBRATION = {
    near: [200, 100, 200],
    call: [600, 200, 600, 200, 600],
    recall: [150, 80, 150, 80, 150, 400, 150, 80, 150, 80, 150],
  };
  //: notes as [Hz, start s, length s]: two soft rising notes; a bright arpeggio
  //: twice; a "ding-dong" three times; a single soft note to confirm the switch
  const SOUND = {
    near: { wave: "sine", gain: 0.15, notes: [[659, 0, 0.25], [880, 0.22, 0.4]] },
    call: {
      wave: "triangle", gain: 0.35,
      notes: [[523, 0, 0.16], [659, 0.15, 0.16], [784, 0.3, 0.16], [1047, 0.45, 0.5],
              [523, 1.1, 0.16], [659, 1.25, 0.16], [784, 1.4, 0.16], [1047, 1.55, 0.6]],
    },
    recall: {
      wave: "triangle", gain: 0.35,
      notes: [[988, 0, 0.3], [740, 0.3, 0.5], [988, 0.9, 0.3], [740, 1.2, 0.5],
              [988, 1.8, 0.3], [740, 2.1, 0.6]],
    },
    test: { wave: "sine", gain: 0.15, notes: [[880, 0, 0.3]] },
  };
  //: the tab's icon per state: badge colour, the number's colour on it, a ring
  const ICON = {
    waiting: ["#0d4a8f", "#ffffff"],
    near: ["#ffb000", "#0b1f33"],
    call: ["#1b6e2b", "#ffffff"],
    recall: ["#1b6e2b", "#ffffff", "#ffb000"],
    done: ["#5a6775", "#ffffff"],
  };

  function store(key, value) {  // storage may be off (private modes): alerts still work
    try {
      if (value === null) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
    } catch (e) { /* nothing kept: a reload may alert once more */ }
  }

  function stored(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  function prune() {  // memos of tickets of other days
    try {
      for (let i = localStorage.length - 1; i >= 0; i -= 1) {
        const key = localStorage.key(i);
        if (!key || !key.startsWith(PREFIX) || key === SOUND_KEY) continue;
        let at = 0;
        try { at = JSON.parse(localStorage.getItem(key)).at || 0; } catch (e) { at = 0; }
        if (Date.now() - at > KEEP_MS) localStorage.removeItem(key);
      }
    } catch (e) { /* no storage */ }
  }

  window.ticketAlerts = (main, words) => {
    const token = main.dataset.token;
    const number = main.dataset.number || "";
    const nearAhead = Number(main.dataset.nearAhead || 3);
    const nearWaitS = Number(main.dataset.nearWaitS || 300);
    const key = PREFIX + token;
    const banner = document.getElementById("alert");
    const box = document.getElementById("alerts-box");
    const toggle = document.getElementById("alerts");
    if (!banner || !box || !toggle) return null;  // a page without them: no alerts
    const title = document.title;  // the page's own: back to it when nothing is alerted
    const reduced = window.matchMedia ? matchMedia("(prefers-reduced-motion: reduce)") : null;
    let audio = null;
    let blink = null;
    let shown = { kind: null, title: title };
    let iconKey = "";

    function memo() {
      try { return JSON.parse(stored(key)) || {}; } catch (e) { return {}; }
    }

    function remember(m) {
      m.at = Date.now();
      store(key, JSON.stringify(m));
    }

    function soundOn() { return stored(SOUND_KEY) === "on"; }

    function unlock() {  // on a tap: browsers start audio only in one
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) return;
      if (!audio) audio = new Context();
      if (audio.state !== "running") audio.resume().catch(() => {});
    }

    function play(kind) {
      const sound = SOUND[kind];
      if (!audio || !sound) return;
      if (audio.state !== "running") audio.resume().catch(() => {});
      const start = audio.currentTime + 0.05;
      for (const [frequency, at, length] of sound.notes) {
        const tone = audio.createOscillator();
        const level = audio.createGain();
        tone.type = sound.wave;
        tone.frequency.value = frequency;
        // a soft attack and a decay: a chime, not a beep
        level.gain.setValueAtTime(0.0001, start + at);
        level.gain.linearRampToValueAtTime(sound.gain, start + at + 0.02);
        level.gain.exponentialRampToValueAtTime(0.0001, start + at + length);
        tone.connect(level).connect(audio.destination);
        tone.start(start + at);
        tone.stop(start + at + length + 0.05);
      }
    }

    function ring(kind) {
      if (!soundOn()) return;
      if (navigator.vibrate) {
        try { navigator.vibrate(VIBRATION[kind]); } catch (e) { /* not allowed here */ }
      }
      play(kind);
    }

    function icon(kind) {
      const colours = ICON[kind] || ICON.waiting;
      if (iconKey === kind + number) return;
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 64;
      const g = canvas.getContext && canvas.getContext("2d");
      if (!g) return;
      g.fillStyle = colours[0];
      g.beginPath();
      if (g.roundRect) g.roundRect(0, 0, 64, 64, 14);
      else g.rect(0, 0, 64, 64);
      g.fill();
      if (colours[2]) {
        g.strokeStyle = colours[2];
        g.lineWidth = 5;
        g.stroke();
      }
      g.fillStyle = colours[1];
      g.textAlign = "center";
      g.textBaseline = "middle";
      // as big as fits (a tab draws it at 16 to 32 px): "A042" as "A" over "042"
      const parts = number.length > 3 ? number.match(/^(\D+)(\d+)$/) : null;
      const lines = parts ? [parts[1], parts[2]] : [number];
      let size = parts ? 32 : 44;
      do {
        g.font = `bold ${size}px system-ui, sans-serif`;
        size -= 2;
      } while (size > 10 && Math.max(...lines.map((l) => g.measureText(l).width)) > 60);
      if (parts) {
        g.fillText(lines[0], 32, 17);
        g.fillText(lines[1], 32, 48);
      } else {
        g.fillText(number, 32, 34);
      }
      let link = document.getElementById("favicon");
      if (!link) {
        link = document.createElement("link");
        link.id = "favicon";
        link.rel = "icon";
        document.head.appendChild(link);
      }
      link.type = "image/png";
      link.href = canvas.toDataURL("image/png");
      iconKey = kind + number;
    }

    function stopBlink() {
      if (blink !== null) clearInterval(blink);
      blink = null;
    }

    function blinkWhileHidden() {
      // a called ticket's hidden tab alternates its title; steady for reduced motion
      stopBlink();
      document.title = shown.title;
      const calling = shown.kind === "call" || shown.kind === "recall";
      if (!calling || !document.hidden || (reduced && reduced.matches)) return;
      blink = setInterval(() => {
        document.title = document.title === shown.title ? words.your_turn : shown.title;
      }, BLINK_MS);
    }

    function render(kind, t) {
      let text = title;
      if (kind === "near") {
        const ahead = Math.max((t.position || 1) - 1, 0);
        text = (ahead === 0 ? words.title_next : words.title_near)
          .replace("{number}", number).replace("{ahead}", ahead);
      } else if (kind === "call" || kind === "recall") {
        text = words[kind === "call" ? "title_called" : "title_recalled"]
          .replace("{number}", number).replace("{counter}", t.counter || "");
      }
      const changed = shown.kind !== kind || shown.title !== text;
      shown = { kind, title: text };
      if (changed) blinkWhileHidden();
      const say = { near: words.near, call: words.your_turn, recall: words.recalled }[kind] || "";
      if (banner.textContent !== say) banner.textContent = say;
      banner.hidden = !say;
      banner.className = "alert alert-" + (kind || "none");
      main.dataset.alert = kind || "";
      document.body.dataset.alert = kind || "";
      icon(kind || "waiting");
    }

    function isNear(t) {
      if (t.position === null || t.position === undefined) return false;
      const wait = t.estimated_wait_s;
      return t.position - 1 <= nearAhead || (wait !== null && wait !== undefined && wait <= nearWaitS);
    }

    function update(t) {
      const m = memo();
      let kind = null;
      if (t.status === "called") {
        const call = t.called_at || "called";  // a server without called_at: one alert
        if (m.call !== call) {
          // a call alerted before, and the ticket not back in a queue since: a recall
          m.kind = m.call ? "recall" : "call";
          m.call = call;
          remember(m);
          ring(m.kind);
        }
        kind = m.kind || "call";
      } else if (t.status === "waiting") {
        if (m.call) {  // moved to another queue: its next call is a first call again
          m.call = null;
          m.kind = null;
          remember(m);
        }
        if (isNear(t)) {
          if (!m.near) {
            m.near = true;
            remember(m);
            ring("near");
          }
          kind = "near";
        }
      }
      box.hidden = false;
      render(kind, t);
    }

    function done() {  // served, no-show, cancelled, void: nothing to alert any more
      store(key, null);
      stopBlink();
      shown = { kind: null, title };
      document.title = title;
      banner.hidden = true;
      box.hidden = true;
      main.dataset.alert = "";
      document.body.dataset.alert = "";
      icon("done");
    }

    prune();
    toggle.checked = soundOn();
    toggle.addEventListener("change", () => {
      store(SOUND_KEY, toggle.checked ? "on" : "off");
      if (!toggle.checked) return;
      unlock();
      play("test");  // what it will sound like; and a nudge where the phone vibrates
      if (navigator.vibrate) {
        try { navigator.vibrate(80); } catch (e) { /* not allowed here */ }
      }
    });
    if (soundOn()) {
      // remembered from before: the browser may want a new tap before it plays
      unlock();
      const wake = () => {
        unlock();
        document.removeEventListener("pointerdown", wake, true);
        document.removeEventListener("keydown", wake, true);
      };
      document.addEventListener("pointerdown", wake, true);
      document.addEventListener("keydown", wake, true);
    }
    document.addEventListener("visibilitychange", blinkWhileHidden);
    if (reduced && reduced.addEventListener) reduced.addEventListener("change", blinkWhileHidden);
    return { update, done };
  };
})();
