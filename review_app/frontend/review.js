// The hfaid review component: login, the reviewer's page and the admins' adjudication page.
// It owns the image view and the keyboard, loads the next leased images ahead, and talks to the
// review API (/api/review/...) with the session cookie; every rule is enforced by the server.
// User text (names, comments, notes, paths, errors) only ever goes into textContent.
"use strict";
(() => {
  const API = "/api/review";
  const root = document.getElementById("root");
  let args = null;
  let started = false;

  // ---- Streamlit's component protocol: three messages, no library needed --------------------
  function post(type, extra) {
    window.parent.postMessage(Object.assign({ isStreamlitMessage: true, type }, extra), "*");
  }
  window.addEventListener("message", (event) => {
    const data = event.data;
    if (!data || data.type !== "streamlit:render" || started) return;
    started = true;
    args = data.args;
    ({ login: startLogin, logout: startLogout, review: startReview,
       adjudicate: startAdjudication })[args.mode]();
  });
  post("streamlit:componentReady", { apiVersion: 1 });

  // ---- small helpers ------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }
  function keyHint(key, label) {
    return [el("kbd", { text: key }), " " + label];
  }
  const dpr = () => window.devicePixelRatio || 1;

  async function api(method, path, body) {
    const init = { method, credentials: "same-origin", headers: { "X-Hfaid": "1" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(API + path, init);
    } catch (err) {
      return { status: 0, ok: false, data: { error: "The server cannot be reached; retrying." } };
    }
    let data = {};
    try { data = await resp.json(); } catch (err) { /* an image or an empty answer */ }
    if (resp.status === 401 && args.mode !== "login") sessionEnded(data.error);
    return { status: resp.status, ok: resp.ok, data };
  }

  // The page reloads to its start (a sandboxed frame may reload the page, not navigate it), and
  // the new page's connection carries the new (or cleared) session cookie.
  function reloadApp() {
    try { window.parent.history.replaceState(null, "", window.parent.location.origin + "/"); }
    catch (err) { /* keep the address */ }
    window.parent.location.reload();
  }

  function sessionEnded(message) {
    root.replaceChildren(el("div", { class: "ended" },
      el("p", { text: message || "Your session has ended; log in again." }),
      el("button", { text: "Log in again", onclick: reloadApp })));
    unbindKeys();
    setHeight(160);
  }

  function setHeight(px) {
    document.documentElement.style.height = px + "px";
    post("streamlit:setFrameHeight", { height: px });
  }

  // The component fills the browser window below its top edge, so the image, its 1:1 crops and
  // every control are on one screen (above the fold at 1440x900).
  function fillWindow() {
    let height = 640;
    try {
      const top = window.frameElement.getBoundingClientRect().top + window.parent.scrollY;
      height = Math.max(480, Math.floor(window.parent.innerHeight - top - 16));
    } catch (err) { /* not embedded */ }
    setHeight(height);
  }

  // ---- keyboard: bound on this frame and on the page around it, so focus never gets stuck ----
  let keyHandler = null;
  function bindKeys(handler) {
    keyHandler = handler;
    document.addEventListener("keydown", handler);
    try {
      const parent = window.parent;
      if (parent.__hfaidKeys) parent.document.removeEventListener("keydown", parent.__hfaidKeys);
      const frame = window.frameElement;
      parent.__hfaidKeys = (event) => {
        if (!frame || !frame.isConnected) {  // this page is gone: stop listening
          parent.document.removeEventListener("keydown", parent.__hfaidKeys);
          return;
        }
        const t = event.target;
        if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable)) return;
        handler(event);
      };
      parent.document.addEventListener("keydown", parent.__hfaidKeys);
    } catch (err) { /* not same-origin: keys work while this frame has focus */ }
    window.focus();
    root.focus();
  }
  function unbindKeys() {
    if (keyHandler) document.removeEventListener("keydown", keyHandler);
    try {
      window.parent.document.removeEventListener("keydown", window.parent.__hfaidKeys);
    } catch (err) { /* ignore */ }
  }
  function typing(event) {
    const t = event.target;
    return t && t.ownerDocument === document && (t.tagName === "INPUT" || t.tagName === "TEXTAREA");
  }
  function refocus() {
    if (document.activeElement && document.activeElement !== root) document.activeElement.blur();
    root.focus();
  }

  // ---- login / logout -----------------------------------------------------------------------
  function startLogin() {
    const name = el("input", { id: "name", autocomplete: "username", autofocus: "" });
    const password = el("input", { id: "password", type: "password",
                                   autocomplete: "current-password" });
    const notice = el("div", { class: "notice error", role: "alert" });
    const button = el("button", { type: "submit", class: "accept", text: "Log in" });
    const form = el("form", { class: "login" },
      el("label", { for: "name" }, "Username", name),
      el("label", { for: "password" }, "Password", password),
      button, notice);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      notice.textContent = "";
      const r = await api("POST", "/login", { name: name.value, password: password.value });
      button.disabled = false;
      if (r.ok) { reloadApp(); return; }
      notice.textContent = r.data.error || "Login failed.";
      password.select();
    });
    root.replaceChildren(form);
    setHeight(form.scrollHeight + 16);
    name.focus();
  }

  async function startLogout() {
    root.replaceChildren(el("p", { text: "Logging out…" }));
    setHeight(60);
    await api("POST", "/logout", {});
    reloadApp();
  }

  // ---- loading images ahead -----------------------------------------------------------------
  const entries = new Map();  // image_id -> {image_id, meta, fit, crops, failed, load}
  function entryFor(imageId) {
    if (!entries.has(imageId)) entries.set(imageId, { image_id: imageId });
    return entries.get(imageId);
  }
  // The ticket that came with the lease lets the server hand the image over without a lookup.
  function ticket(entry) {
    return entry.ticket ? "?t=" + encodeURIComponent(entry.ticket) : "";
  }
  function decoded(url) {
    const img = new Image();
    img.decoding = "async";
    img.src = url;
    return img.decode().then(() => img);
  }
  // Resolves to the entry with its fit view and crops decoded (so showing it paints at once),
  // or null when the server says the file cannot be shown (it recorded why). One request per
  // image: a 4-byte header length, a JSON header, then the JPEGs.
  function load(entry) {
    if (entry.load) return entry.load;
    entry.load = (async () => {
      let resp;
      try {
        resp = await fetch(API + "/bundle/" + entry.image_id + ticket(entry),
                           { credentials: "same-origin" });
      } catch (err) {
        throw new Error("network");
      }
      if (resp.status === 401) { sessionEnded(); return null; }
      if ([403, 404, 410].includes(resp.status)) {
        let data = {};
        try { data = await resp.json(); } catch (err) { /* no body */ }
        entry.failed = data.error || "This image cannot be shown.";
        return null;
      }
      if (!resp.ok) throw new Error("bundle " + resp.status);
      const buf = await resp.arrayBuffer();
      const size = new DataView(buf).getUint32(0);
      const meta = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, size)));
      let at = 4 + size;
      entry.urls = meta.parts.map((length) => {
        const url = URL.createObjectURL(new Blob([new Uint8Array(buf, at, length)],
                                                 { type: "image/jpeg" }));
        at += length;
        return url;
      });
      const [fit, ...crops] = await Promise.all(entry.urls.map(decoded));
      entry.meta = meta;
      entry.fit = fit;
      entry.crops = crops;
      return entry;
    })();
    entry.load.catch(() => { entry.load = null; });  // a network hiccup: try again later
    return entry.load;
  }
  // Images voted on long ago give their memory back (the last 20 stay for undo/change).
  const recent = [];
  function retire(imageId) {
    recent.push(imageId);
    while (recent.length > 20) {
      const old = entries.get(recent.shift());
      if (old && old.urls) {
        old.urls.forEach((u) => URL.revokeObjectURL(u));
        entries.delete(old.image_id);
      }
    }
  }

  // ---- the image view: fit view never enlarged, 1:1 crops in device pixels, loupe -----------
  function makeViewer(view, cropsBox) {
    const label = el("div", { class: "label" });
    let entry = null;
    let zoom = 0;  // 0: fit, 1: 100%, 2: 200%
    let point = { x: 0.5, y: 0.5 };
    let loupe = null;

    function sizeFit() {
      if (!entry || !entry.fit) return;
      const m = entry.meta;
      // One fit-JPEG pixel per device pixel at most: a small image is shown at its own size.
      const natW = m.fit.w / dpr();
      const natH = m.fit.h / dpr();
      const scale = Math.min(1, view.clientWidth / natW, view.clientHeight / natH);
      entry.fit.style.width = Math.floor(natW * scale) + "px";
      entry.fit.style.height = Math.floor(natH * scale) + "px";
      const shown = (natW * scale * dpr()) / m.width;
      label.textContent = `image ${m.image_id.slice(0, 8)} · ${m.width} × ${m.height} px · ` +
        `shown at ${Math.round(shown * 100)}%` +
        (shown >= 0.999 ? " (1:1)" : "") + " · click or Z to zoom";
    }

    function show(next) {
      entry = next;
      zoom = 0;
      if (loupe) { loupe.remove(); loupe = null; }
      if (!entry) { view.replaceChildren(); cropsBox.replaceChildren(); return; }
      if (!entry.fit) {
        view.replaceChildren(el("div", { class: "wait", text: "loading…" }));
        cropsBox.replaceChildren();
        return;
      }
      entry.fit.className = "fit";
      entry.fit.alt = "fit view";
      entry.fit.onclick = (event) => {
        const box = entry.fit.getBoundingClientRect();
        point = { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
        cycleZoom();
      };
      entry.fit.onmousemove = (event) => {
        const box = entry.fit.getBoundingClientRect();
        point = { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
      };
      view.replaceChildren(entry.fit, label);
      sizeFit();
      cropsBox.replaceChildren(...entry.crops.map((img, i) => {
        const c = entry.meta.crops[i];
        img.className = "crop";
        img.alt = "1:1 crop";
        // 1:1 in device pixels: one image pixel per screen pixel whatever the zoom level.
        img.style.width = c.w / dpr() + "px";
        img.style.height = c.h / dpr() + "px";
        return el("figure", {}, img, el("figcaption", { text: `1:1 crop at ${c.x}, ${c.y}` }));
      }));
    }

    function drawLoupe() {
      const m = entry.meta;
      const w = (m.width * zoom) / dpr();
      const h = (m.height * zoom) / dpr();
      const vw = view.clientWidth;
      const vh = view.clientHeight;
      loupe.style.backgroundSize = `${w}px ${h}px`;
      loupe.style.backgroundPosition = `${vw / 2 - point.x * w}px ${vh / 2 - point.y * h}px`;
      loupe.className = "loupe" + (zoom === 2 ? " px2" : "");
      label.textContent = `${zoom * 100}% at the point you clicked · move to pan · click, Z or Esc`;
    }

    function cycleZoom() {
      if (!entry || !entry.fit) return;
      zoom = (zoom + 1) % 3;
      if (zoom === 0) { loupe.remove(); loupe = null; sizeFit(); return; }
      if (!loupe) {
        loupe = el("div", { class: "loupe", title: "zoomed view" });
        loupe.style.backgroundImage = `url("${entry.meta.original}${ticket(entry)}")`;
        loupe.onclick = () => cycleZoom();
        loupe.onmousemove = (event) => {
          const box = view.getBoundingClientRect();
          point = { x: (event.clientX - box.left) / box.width, y: (event.clientY - box.top) / box.height };
          drawLoupe();
        };
        view.append(loupe);
        view.append(label);
      }
      drawLoupe();
    }

    function unzoom() {
      if (zoom === 0) return false;
      zoom = 2;
      cycleZoom();
      return true;
    }

    window.addEventListener("resize", () => { if (zoom) drawLoupe(); else sizeFit(); });
    return { show, cycleZoom, unzoom, resize: sizeFit };
  }

  function helpBox(rows) {
    const box = el("div", { class: "help", role: "dialog" },
      el("h3", { text: "Keys" }),
      el("table", {}, ...rows.map(([k, v]) => el("tr", {}, el("td", {}, el("kbd", { text: k })),
                                                 el("td", { text: v })))),
      el("p", { text: "Press ? or Esc to close." }));
    box.hidden = true;
    return box;
  }

  // ---- the reviewer's page ------------------------------------------------------------------
  function startReview() {
    const reasons = args.reasons;  // [[tag, label], ...]
    const guardMs = args.guard_ms;
    const state = {
      queue: [],          // entries leased to me, the one on screen first
      gone: new Set(),    // images I voted on or skipped here (never re-added by a late answer)
      painted: false, shownAt: 0, inputAt: 0, timings: [],
      chain: Promise.resolve(), history: [], progress: null, user: "", showing: null,
    };
    window.hfaidTimings = state.timings;  // click/key -> next image painted, for measurements

    const view = el("div", { class: "view" });
    const cropsBox = el("div", { class: "crops" });
    const viewer = makeViewer(view, cropsBox);
    const who = el("div", { class: "who" });
    const notice = el("div", { class: "notice", role: "status" });
    const boxes = reasons.map(([tag, label], i) => {
      const input = el("input", { type: "checkbox", value: tag, tabindex: "-1" });
      const row = el("label", { title: `key ${i + 1}` }, input, el("kbd", { text: String(i + 1) }),
                     " " + label);
      input.addEventListener("change", () => { row.classList.toggle("on", input.checked); refocus(); });
      return { tag, input, row };
    });
    const scores = el("div", { class: "who" });
    const comment = el("input", { class: "comment", placeholder: "comment (C to type, Esc to leave)",
                                  maxlength: "2000", "aria-label": "Comment" });
    const historyList = el("ol");
    const help = helpBox([
      ["A", "accept"], ["R", "reject (needs a reason: 1-9)"], ["S", "skip / unsure"],
      ["U", "undo your last vote"], ["1-9", "toggle a reason"], ["C", "type a comment"],
      ["Esc", "leave the comment box / close / unzoom"], ["Z", "zoom 100% / 200% / fit"],
      ["?", "show these keys"]]);
    const button = (text, cls, key, fn) =>
      el("button", { class: cls, title: `key ${key}`, onclick: (e) => { e.currentTarget.blur(); fn(); refocus(); } },
         ...keyHint(key, text));
    const panel = el("div", { class: "panel" },
      who,
      el("div", { class: "buttons" },
        button("Accept", "accept", "A", () => vote("accept")),
        button("Reject", "reject", "R", () => vote("reject")),
        button("Skip / unsure", "", "S", () => vote("skip")),
        button("Undo", "", "U", () => undo(null))),
      notice,
      el("div", { class: "reasons" }, el("b", { text: "Reasons" }), ...boxes.map((b) => b.row)),
      comment, scores,
      el("div", { class: "history" }, el("b", { text: "Your last votes" }), historyList),
      el("button", { onclick: () => { help.hidden = !help.hidden; refocus(); } }, ...keyHint("?", "keys")));
    root.replaceChildren(el("div", { class: "review" }, view, cropsBox, panel), help);
    root.style.position = "relative";

    function say(text, kind) {
      notice.textContent = text || "";
      notice.className = "notice" + (kind ? " " + kind : "");
    }
    function chosen() { return boxes.filter((b) => b.input.checked).map((b) => b.tag); }
    function setChoices(tags, text) {
      for (const b of boxes) { b.input.checked = tags.includes(b.tag); b.row.classList.toggle("on", b.input.checked); }
      comment.value = text || "";
    }
    function showProgress() {
      const p = state.progress;
      who.textContent = p ? `${state.user}: ${p.votes} votes (${p.votes_24h} in 24 h) · ` +
        `${p.left.toLocaleString()} images still open to you` : state.user;
    }
    function showHistory() {
      historyList.replaceChildren(...state.history.map((h) => {
        const what = h.decision + (h.reasons && h.reasons.length ? " (" + h.reasons.join(", ") + ")" : "");
        const row = el("li", { class: h.undone ? "undone" : "" },
          el("span", { text: h.image_id.slice(0, 8) }), el("span", { text: what }),
          el("span", { class: "said", text: h.comment ? "“" + h.comment + "”" : "" }));
        if (h.can_change) {
          row.append(el("button", { text: "change", title: "take this vote back and vote again",
                                    onclick: () => { undo(h.image_id); refocus(); } }));
        }
        return row;
      }));
    }

    function merge(items) {
      for (const item of items) entryFor(item.image_id).ticket = item.ticket;
      const ids = items.map((i) => i.image_id);
      const shown = state.queue[0];
      const keep = state.queue.filter((e, i) => (i === 0 && state.painted) || ids.includes(e.image_id));
      const known = new Set(keep.map((e) => e.image_id));
      for (const id of ids) {
        if (!known.has(id) && !state.gone.has(id)) keep.push(entryFor(id));
      }
      state.queue = keep;
      state.queue.slice(0, 1 + args.ahead).forEach((e) => load(e).catch(() => {}));
      if (state.queue[0] !== shown || !state.painted) showCurrent();
    }

    async function showCurrent() {
      const entry = state.queue[0] || null;
      if (entry && entry === state.showing) return;  // already on its way to the screen
      state.showing = entry;
      state.painted = false;
      if (!entry) {
        viewer.show(null);
        view.replaceChildren(el("div", { class: "wait", text: "Nothing left for you to review. Thank you!" }));
        document.body.dataset.image = "";
        return;
      }
      if (!entry.fit) viewer.show(entry);  // "loading…" until its pixels are here
      let ready = null;
      try { ready = await load(entry); } catch (err) { ready = undefined; }
      if (state.queue[0] !== entry) return;  // moved on meanwhile
      if (ready === null) {  // the file cannot be shown: the server recorded it
        say(entry.failed, "error");
        state.gone.add(entry.image_id);
        state.queue.shift();
        refreshState();
        showCurrent();
        return;
      }
      if (ready === undefined) {
        setTimeout(() => { state.showing = null; showCurrent(); }, 1000);
        return;
      }
      viewer.show(entry);
      const s = entry.meta.scores;  // only when the server shows scores ([review] show_scores)
      scores.textContent = s ? Object.entries(s).map(([k, v]) =>
        `${k} ${v === null ? "-" : Number(v).toFixed(3)}`).join(" · ") : "";
      // Measured after the frame with the new image is painted.
      requestAnimationFrame(() => setTimeout(() => {
        if (state.queue[0] !== entry) return;
        state.painted = true;
        state.shownAt = performance.now();
        document.body.dataset.image = entry.image_id;  // for tests: the image on screen
        if (state.inputAt) {
          state.timings.push({ image_id: entry.image_id, ms: state.shownAt - state.inputAt });
          state.inputAt = 0;
        }
      }, 0));
    }

    function send(method, path, body) {
      const result = state.chain.then(() => api(method, path, body));
      state.chain = result.catch(() => {});
      return result;
    }

    function vote(decision) {
      const entry = state.queue[0];
      const now = performance.now();
      // A vote names the image on screen; a second click right after a new image appeared
      // (a double click) is ignored rather than landing on an image nobody looked at.
      if (!entry || !state.painted || now - state.shownAt < guardMs) return;
      const tags = decision === "skip" ? [] : chosen();
      if (decision === "reject" && args.reject_needs_reason && tags.length === 0) {
        say("A reject needs a reason: press 1-9 first.", "error");
        return;
      }
      const payload = { image_id: entry.image_id, decision, reasons: tags,
                        comment: comment.value.trim() || null, seen_ms: Math.round(now - state.shownAt) };
      state.gone.add(entry.image_id);
      state.queue.shift();
      retire(entry.image_id);
      state.history.unshift({ image_id: entry.image_id, decision, reasons: tags,
                              comment: payload.comment, undone: false, can_change: false, local: true });
      state.history = state.history.slice(0, 20);
      if (state.progress && decision !== "skip") {
        state.progress.votes += 1;
        state.progress.votes_24h += 1;
        state.progress.left = Math.max(0, state.progress.left - 1);
      }
      setChoices([], "");
      say(decision === "skip" ? "Skipped; it comes back later." : "Vote saved.", "ok");
      showProgress();
      showHistory();
      state.inputAt = now;
      showCurrent();
      send("POST", "/vote", payload).then((r) => {
        if (!r.ok && r.status !== 401) {
          say(`Vote on ${entry.image_id.slice(0, 8)} not stored: ${r.data.error || "server error"}`, "error");
          const h = state.history.find((x) => x.local && x.image_id === entry.image_id);
          if (h) h.undone = true;
          showHistory();
        } else {
          const h = state.history.find((x) => x.local && x.image_id === entry.image_id);
          if (h) { h.can_change = decision !== "skip"; }
          showHistory();
        }
        if (r.data.items) merge(r.data.items);
      });
    }

    function undo(imageId) {
      send("POST", "/undo", imageId ? { image_id: imageId } : {}).then((r) => {
        if (!r.ok) { if (r.status !== 401) say(r.data.error || "Nothing to undo.", "error"); return; }
        const id = r.data.image_id;
        const entry = entryFor(id);
        const before = state.history.find((h) => h.image_id === id && !h.undone && h.decision !== "skip");
        state.gone.delete(id);
        state.queue = [entry, ...state.queue.filter((e) => e.image_id !== id)];
        state.history = r.data.history;
        if (state.progress) state.progress.votes = Math.max(0, state.progress.votes - 1);
        showHistory();
        showProgress();
        merge(r.data.items);
        showCurrent();
        if (before) setChoices(before.reasons || [], before.comment);
        say(`Vote on ${id.slice(0, 8)} taken back: vote again.`, "ok");
      });
    }

    async function refreshState() {
      const r = await send("GET", "/state");
      if (!r.ok) return;
      state.user = r.data.user;
      state.progress = r.data.progress;
      state.history = r.data.history;
      showProgress();
      showHistory();
      merge(r.data.items);
    }

    bindKeys((event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (typing(event)) {  // in the comment box only Esc and Enter are ours: they leave it
        if (event.key === "Escape" || event.key === "Enter") { event.preventDefault(); refocus(); }
        return;
      }
      if (event.repeat) return;
      const key = event.key;
      const lower = key.toLowerCase();
      let handled = true;
      if (key === "?") help.hidden = !help.hidden;
      else if (key === "Escape") { if (!help.hidden) help.hidden = true; else viewer.unzoom(); }
      else if (lower === "a") vote("accept");
      else if (lower === "r") vote("reject");
      else if (lower === "s") vote("skip");
      else if (lower === "u") undo(null);
      else if (lower === "z") viewer.cycleZoom();
      else if (lower === "c") { comment.focus(); }
      else if (/^[1-9]$/.test(key) && boxes[Number(key) - 1]) {
        const b = boxes[Number(key) - 1];
        b.input.checked = !b.input.checked;
        b.row.classList.toggle("on", b.input.checked);
      } else handled = false;
      if (handled) event.preventDefault();
    });
    fillWindow();
    window.parent.addEventListener("resize", () => { fillWindow(); viewer.resize(); });
    refreshState();
    // Keep the leases alive while the page is open (a hidden tab lets them lapse).
    setInterval(() => { if (!document.hidden) refreshState(); }, 60000);
  }

  // ---- the admins' adjudication page --------------------------------------------------------
  function startAdjudication() {
    const labels = Object.fromEntries(args.reasons);
    const state = { cases: [], index: 0, elsewhere: 0, painted: false, shownAt: 0 };
    const view = el("div", { class: "view" });
    const cropsBox = el("div", { class: "crops" });
    const viewer = makeViewer(view, cropsBox);
    const count = el("div", { class: "who" });
    const kind = el("div", {});
    const votes = el("table", { class: "votes" });
    const path = el("div", { class: "who" });
    const notice = el("div", { class: "notice", role: "status" });
    const note = el("input", { class: "comment", placeholder: "note (C to type, Esc to leave)",
                               maxlength: "2000", "aria-label": "Note" });
    const help = helpBox([
      ["A", "decide: accept"], ["R", "decide: reject"], ["N", "next case (decide later)"],
      ["U", "undo your last decision"], ["C", "type a note"], ["Z", "zoom 100% / 200% / fit"],
      ["Esc", "leave the note box / close / unzoom"], ["?", "show these keys"]]);
    const button = (text, cls, key, fn) =>
      el("button", { class: cls, title: `key ${key}`, onclick: (e) => { e.currentTarget.blur(); fn(); refocus(); } },
         ...keyHint(key, text));
    const panel = el("div", { class: "panel" }, count,
      el("div", { class: "buttons" },
        button("Accept", "accept", "A", () => decide("accept")),
        button("Reject", "reject", "R", () => decide("reject")),
        button("Next case", "", "N", () => move(1)),
        button("Undo decision", "", "U", undoDecision)),
      notice, kind, votes, note, path,
      el("button", { onclick: () => { help.hidden = !help.hidden; refocus(); } }, ...keyHint("?", "keys")));
    root.replaceChildren(el("div", { class: "review" }, view, cropsBox, panel), help);
    root.style.position = "relative";

    function say(text, cls) { notice.textContent = text || ""; notice.className = "notice" + (cls ? " " + cls : ""); }
    function current() { return state.cases[state.index] || null; }

    function render() {
      const c = current();
      count.textContent = `${state.cases.length} case(s) waiting for you` +
        (state.elsewhere ? ` · ${state.elsewhere} more that only another admin can decide` : "");
      state.painted = false;
      if (!c) {
        viewer.show(null);
        view.replaceChildren(el("div", { class: "wait", text: "No split or unsure images waiting for you." }));
        kind.textContent = ""; votes.replaceChildren(); path.textContent = "";
        document.body.dataset.image = "";
        return;
      }
      kind.replaceChildren(el("b", { text: c.kind === "split" ? "Split votes" : "Unsure (skipped)" }),
                           ` · image ${c.image_id.slice(0, 12)}`);
      const rows = c.votes.map((v) => el("tr", {},
        el("td", { text: v.reviewer }), el("td", { text: v.decision }),
        el("td", { text: v.reasons.map((t) => labels[t] || t).join(", ") }),
        el("td", { text: v.comment || "" })));
      const skips = c.skips.map((s) => el("tr", {},
        el("td", { text: s.reviewer }), el("td", { text: "skip" }), el("td", { text: "" }),
        el("td", { text: s.comment || "" })));
      votes.replaceChildren(el("tr", {}, el("th", { text: "reviewer" }), el("th", { text: "vote" }),
                                       el("th", { text: "reasons" }), el("th", { text: "comment" })),
                            ...rows, ...skips);
      const entry = entryFor(c.image_id);
      viewer.show(entry);
      load(entry).then((ready) => {
        if (current() !== c) return;
        if (!ready) { say(entry.failed, "error"); return; }
        viewer.show(entry);
        path.textContent = entry.meta.path || "";
        requestAnimationFrame(() => setTimeout(() => {
          if (current() !== c) return;
          state.painted = true;
          state.shownAt = performance.now();
          document.body.dataset.image = c.image_id;
        }, 0));
      }).catch(() => say("The image could not be loaded; try again.", "error"));
      state.cases.slice(state.index + 1, state.index + 3).forEach((n) => load(entryFor(n.image_id)).catch(() => {}));
    }

    function take(data, focusId) {
      for (const c of data.cases) entryFor(c.image_id).ticket = c.ticket;
      state.cases = data.cases;
      state.elsewhere = data.elsewhere;
      const at = focusId ? state.cases.findIndex((c) => c.image_id === focusId) : -1;
      state.index = at >= 0 ? at : Math.min(state.index, Math.max(0, state.cases.length - 1));
      render();
    }

    function move(step) {
      if (!state.cases.length) return;
      state.index = (state.index + step + state.cases.length) % state.cases.length;
      note.value = "";
      render();
    }

    async function decide(decision) {
      const c = current();
      if (!c || !state.painted || performance.now() - state.shownAt < args.guard_ms) return;
      state.painted = false;
      const r = await api("POST", "/decide", { image_id: c.image_id, decision, note: note.value.trim() || null });
      if (!r.ok) { if (r.status !== 401) say(r.data.error || "Not decided.", "error"); if (r.data.cases) take(r.data); return; }
      note.value = "";
      say(`Decided ${c.image_id.slice(0, 8)}: ${decision} (U undoes).`, "ok");
      take(r.data);
    }

    async function undoDecision() {
      const r = await api("POST", "/undo-decision", {});
      if (!r.ok) { if (r.status !== 401) say(r.data.error || "Nothing to undo.", "error"); return; }
      say(`Decision on ${r.data.image_id.slice(0, 8)} taken back.`, "ok");
      take(r.data, r.data.image_id);
    }

    bindKeys((event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (typing(event)) {
        if (event.key === "Escape" || event.key === "Enter") { event.preventDefault(); refocus(); }
        return;
      }
      if (event.repeat) return;
      const lower = event.key.toLowerCase();
      let handled = true;
      if (event.key === "?") help.hidden = !help.hidden;
      else if (event.key === "Escape") { if (!help.hidden) help.hidden = true; else viewer.unzoom(); }
      else if (lower === "a") decide("accept");
      else if (lower === "r") decide("reject");
      else if (lower === "n" || lower === "s") move(1);
      else if (lower === "u") undoDecision();
      else if (lower === "z") viewer.cycleZoom();
      else if (lower === "c") note.focus();
      else handled = false;
      if (handled) event.preventDefault();
    });
    fillWindow();
    window.parent.addEventListener("resize", () => { fillWindow(); viewer.resize(); });
    api("GET", "/cases").then((r) => { if (r.ok) take(r.data); });
  }
})();
