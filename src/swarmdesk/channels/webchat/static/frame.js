/* The chat panel, on the Swarmdesk origin inside the widget's frame. Vanilla JS, no build step.
 * Every text that came from a person is set with textContent: nothing here parses HTML. */
(function () {
  "use strict";
  var KEY = document.documentElement.getAttribute("data-key");
  var API = "/api/v1";
  var hash = new URLSearchParams(location.hash.slice(1));
  var identity = { user_id: hash.get("user_id") || "", user_hash: hash.get("user_hash") || "",
                   email: hash.get("email") || "", email_hash: hash.get("email_hash") || "",
                   name: hash.get("name") || "" };
  var storeKey = "swarmdesk:" + KEY + ":" + (identity.user_id ? "u:" + identity.user_id :
                 identity.email_hash ? "e:" + identity.email : "anon");
  var app = document.getElementById("app");
  var state = { config: null, token: null, email: null, conversationId: null, seen: {}, lastEventId: null,
                queueId: null, ws: null, sse: null, wsFailures: 0, typingSentAt: 0, typingTimer: null,
                agentTypingTimer: null, pending: [] };
  var ui = {};

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function parent(msg) { if (window.parent !== window) window.parent.postMessage(msg, "*"); }

  async function api(method, path, body) {
    var headers = {};
    if (state.token) headers.authorization = "Bearer " + state.token;
    if (body !== undefined) headers["content-type"] = "application/json";
    var r = await fetch(API + path, { method: method, headers: headers,
                                      body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 204) return null;
    var data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      var err = new Error((data && data.detail) || ("request failed (" + r.status + ")"));
      err.status = r.status;
      err.body = data;
      throw err;
    }
    return data;
  }

  function saveSession() {
    try { localStorage.setItem(storeKey, JSON.stringify({ token: state.token, email: state.email })); } catch (e) { /* private mode */ }
  }

  function loadSession() {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      if (saved && saved.token) { state.token = saved.token; state.email = saved.email || null; }
    } catch (e) { /* nothing saved */ }
  }

  function dropSession() {
    state.token = null;
    try { localStorage.removeItem(storeKey); } catch (e) { /* ignore */ }
  }

  // --- layout -------------------------------------------------------------------------------------

  function shell() {
    var c = state.config;
    document.documentElement.style.setProperty("--accent", c.color);
    document.documentElement.style.setProperty("--on-accent", c.text_color);
    app.textContent = "";
    var header = el("header", "head");
    header.appendChild(el("span", "title", c.title));
    var close = el("button", "close", "\u00d7");
    close.type = "button";
    close.setAttribute("aria-label", "Close chat");
    close.addEventListener("click", function () { parent({ type: "swarmdesk:close" }); });
    header.appendChild(close);
    app.appendChild(header);
    ui.notice = el("div", "notice");
    ui.notice.hidden = true;
    app.appendChild(ui.notice);
    ui.body = el("main", "body");
    app.appendChild(ui.body);
    parent({ type: "swarmdesk:config", color: c.color, text_color: c.text_color });
  }

  function offlineNotice() {
    var c = state.config;
    if (c.available) { ui.notice.hidden = true; return; }
    ui.notice.hidden = false;
    ui.notice.className = "notice offline";
    if (state.email && c.email_fallback) {
      ui.notice.textContent = "Nobody is available right now. We'll answer by email at " + state.email + ".";
    } else {
      ui.notice.textContent = c.offline_message;
    }
  }

  // --- pre-chat form --------------------------------------------------------------------------------

  function showForm() {
    var c = state.config;
    ui.body.textContent = "";
    ui.body.appendChild(el("p", "greeting", c.greeting));
    if (!c.available) {
      ui.notice.hidden = false;
      ui.notice.className = "notice offline";
      ui.notice.textContent = c.offline_message;
    }
    var form = el("form", "prechat");
    form.noValidate = true;
    var inputs = {};
    c.fields.forEach(function (f) {
      var label = el("label", "field");
      label.appendChild(el("span", "label", f.label + (f.required ? " *" : "")));
      var input = el("input");
      input.name = f.name;
      input.type = f.input_type;
      // Nobody online: the answer comes by email, so the address is needed.
      input.required = f.required || (f.name === "email" && !c.available && c.email_fallback);
      if (f.name === "email" && identity.email) input.value = identity.email;
      if (f.name === "name" && identity.name) input.value = identity.name;
      label.appendChild(input);
      form.appendChild(label);
      inputs[f.name] = input;
    });
    var error = el("p", "error");
    error.setAttribute("role", "alert");
    form.appendChild(error);
    var submit = el("button", "primary", "Start chat");
    submit.type = "submit";
    form.appendChild(submit);
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      var values = {};
      var missing = [];
      Object.keys(inputs).forEach(function (name) {
        var v = inputs[name].value.trim();
        if (v) values[name] = v;
        else if (inputs[name].required) missing.push(name);
      });
      if (missing.length) {
        error.textContent = "Please fill in: " + missing.map(function (n) {
          return c.fields.filter(function (f) { return f.name === n; })[0].label; }).join(", ");
        return;
      }
      submit.disabled = true;
      try { await startSession(values); } catch (e) { error.textContent = e.message; submit.disabled = false; }
    });
    ui.body.appendChild(form);
  }

  async function startSession(values) {
    var body = { fields: values };
    if (identity.user_id) { body.user_id = identity.user_id; body.user_hash = identity.user_hash; }
    if (identity.email && identity.email_hash) { body.user_email = identity.email; body.user_email_hash = identity.email_hash; }
    var s = await api("POST", "/inboxes/" + KEY + "/widget-sessions", body);
    state.token = s.token;
    state.email = s.email;
    saveSession();
    await showChat();
  }

  function canSkipForm() {
    if (!identity.user_id && !identity.email_hash) return false;
    return state.config.fields.every(function (f) {
      return !f.required || (f.name === "name" && identity.name) || (f.name === "email" && identity.email);
    });
  }

  // --- the conversation ------------------------------------------------------------------------------

  async function showChat() {
    ui.body.textContent = "";
    offlineNotice();
    ui.list = el("ol", "messages");
    ui.list.setAttribute("aria-live", "polite");
    ui.body.appendChild(ui.list);
    ui.list.appendChild(el("li", "msg theirs greeting", state.config.greeting));
    ui.typing = el("div", "typing");
    ui.typing.hidden = true;
    ui.body.appendChild(ui.typing);
    ui.status = el("div", "status");
    ui.body.appendChild(ui.status);

    var composer = el("form", "composer");
    ui.input = el("textarea");
    ui.input.rows = 2;
    ui.input.placeholder = "Write a message\u2026";
    ui.input.setAttribute("aria-label", "Message");
    ui.input.addEventListener("input", onTyping);
    ui.input.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
    });
    ui.file = el("input");
    ui.file.type = "file";
    ui.file.className = "file";
    ui.file.setAttribute("aria-label", "Attach a file");
    ui.file.addEventListener("change", function () {
      ui.status.textContent = ui.file.files.length ? "Attached: " + ui.file.files[0].name : "";
    });
    var sendButton = el("button", "primary send", "Send");
    sendButton.type = "submit";
    composer.appendChild(ui.input);
    var row = el("div", "row");
    row.appendChild(ui.file);
    ui.transcript = el("button", "link transcript", "Email me the transcript");
    ui.transcript.type = "button";
    ui.transcript.hidden = true;
    ui.transcript.addEventListener("click", transcript);
    row.appendChild(ui.transcript);
    row.appendChild(sendButton);
    composer.appendChild(row);
    composer.addEventListener("submit", function (e) { e.preventDefault(); send(); });
    ui.body.appendChild(composer);

    try {
      await register();
    } catch (e) {
      if (e.status === 401) { dropSession(); showForm(); return; }
      ui.status.textContent = e.message;
    }
  }

  function updateTranscriptButton() {
    ui.transcript.hidden = !(state.config.email_fallback && state.email && state.conversationId);
  }

  async function register() {
    var reg = await api("POST", "/realtime/register");
    state.queueId = reg.queue_id;
    state.lastEventId = reg.last_event_id;
    var open = (reg.state.conversations || []).filter(function (c) { return c.status !== "closed"; });
    open.sort(function (a, b) { return b.id - a.id; });
    if (open.length && state.conversationId === null) state.conversationId = open[0].id;
    if (state.conversationId !== null) await loadMessages();
    updateTranscriptButton();
    connect();
  }

  async function loadMessages() {
    var page = await api("GET", "/customer/conversations/" + state.conversationId + "/messages?limit=200");
    page.items.forEach(addMessage);
  }

  function addMessage(m) {
    if (state.seen[m.id]) return;
    state.seen[m.id] = true;
    var mine = m.sender.type === "contact";
    var item = el("li", "msg " + (mine ? "mine" : "theirs"));
    item.setAttribute("data-id", String(m.id));
    if (!mine) item.appendChild(el("span", "who", m.sender.name));
    item.appendChild(el("div", "text", m.content));
    (m.attachments || []).forEach(function (a) {
      var link = el("a", "attachment", a.filename);
      link.href = "#";
      link.addEventListener("click", function (e) { e.preventDefault(); download(a); });
      item.appendChild(link);
    });
    ui.list.appendChild(item);
    ui.list.scrollTop = ui.list.scrollHeight;
    if (!mine) { hideAgentTyping(); parent({ type: "swarmdesk:unread" }); }
  }

  async function download(a) {
    var r = await fetch(a.url, { headers: { authorization: "Bearer " + state.token } });
    if (!r.ok) { ui.status.textContent = "The file could not be downloaded."; return; }
    var url = URL.createObjectURL(await r.blob());
    var link = el("a");
    link.href = url;
    link.download = a.filename;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function readFile(file) {
    return new Promise(function (resolve, reject) {
      var reader = new FileReader();
      reader.onload = function () { resolve(String(reader.result).split(",", 2)[1] || ""); };
      reader.onerror = function () { reject(new Error("the file could not be read")); };
      reader.readAsDataURL(file);
    });
  }

  async function send() {
    var text = ui.input.value.trim();
    var file = ui.file.files.length ? ui.file.files[0] : null;
    if (!text && !file) return;
    ui.status.textContent = "";
    try {
      var attachments = [];
      if (file) {
        attachments.push({ filename: file.name, content_type: file.type || "application/octet-stream",
                           data_base64: await readFile(file) });
      }
      var content = text || file.name;
      var message;
      if (state.conversationId === null) {
        // A conversation starts with text; a file goes in the message right after it.
        var conv = await api("POST", "/customer/conversations", { content: text || "(file)" });
        state.conversationId = conv.id;
        updateTranscriptButton();
        await loadMessages();
        if (attachments.length) {
          message = await api("POST", "/customer/conversations/" + conv.id + "/messages",
                              { content: content, attachments: attachments });
        }
      } else {
        message = await api("POST", "/customer/conversations/" + state.conversationId + "/messages",
                            { content: content, attachments: attachments });
      }
      if (message) addMessage(message);
      ui.input.value = "";
      ui.file.value = "";
      stopTyping();
    } catch (e) {
      ui.status.textContent = e.message;
    }
  }

  async function transcript() {
    ui.transcript.disabled = true;
    try {
      var r = await api("POST", "/customer/conversations/" + state.conversationId + "/transcript");
      ui.status.textContent = "Transcript sent to " + r.to + ".";
    } catch (e) {
      ui.status.textContent = e.message;
    }
    ui.transcript.disabled = false;
  }

  // --- typing, both ways --------------------------------------------------------------------------

  function onTyping() {
    if (state.conversationId === null) return;
    var now = Date.now();
    if (now - state.typingSentAt > 3000) {
      state.typingSentAt = now;
      api("POST", "/customer/conversations/" + state.conversationId + "/typing").catch(function () {});
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(stopTyping, 4000);
  }

  function stopTyping() {
    clearTimeout(state.typingTimer);
    if (state.typingSentAt && state.conversationId !== null) {
      state.typingSentAt = 0;
      api("DELETE", "/customer/conversations/" + state.conversationId + "/typing").catch(function () {});
    }
  }

  function showAgentTyping(name) {
    ui.typing.textContent = (name || "An agent") + " is typing\u2026";
    ui.typing.hidden = false;
    clearTimeout(state.agentTypingTimer);
    state.agentTypingTimer = setTimeout(hideAgentTyping, 6000);  // a notice that is not renewed expires
  }

  function hideAgentTyping() { if (ui.typing) ui.typing.hidden = true; clearTimeout(state.agentTypingTimer); }

  // --- real time: WebSocket, SSE when the socket cannot connect ------------------------------------

  function handle(event) {
    if (typeof event.id === "number") state.lastEventId = event.id;
    if (event.type === "customer.message_created") {
      if (state.conversationId === null) { state.conversationId = event.message.conversation_id; updateTranscriptButton(); }
      if (event.message.conversation_id === state.conversationId) addMessage(event.message);
    } else if (event.type === "customer.typing" && event.conversation_id === state.conversationId) {
      if (event.typing && Date.now() - Date.parse(event.occurred_at) < 10000) showAgentTyping(event.sender_name);
      else hideAgentTyping();
    }
  }

  function reload() {
    if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
    if (state.sse) { state.sse.close(); state.sse = null; }
    setTimeout(function () { register().catch(function (e) { ui.status.textContent = e.message; }); }, 500);
  }

  function query() {
    return "queue_id=" + encodeURIComponent(state.queueId) + "&last_event_id=" + state.lastEventId;
  }

  function connect() {
    if (state.wsFailures >= 2 || !window.WebSocket) { connectSse(); return; }
    var opened = false;
    var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host +
                           API + "/realtime/ws?" + query());
    state.ws = ws;
    ws.onopen = function () { opened = true; state.wsFailures = 0; };
    ws.onmessage = function (m) {
      var frame = JSON.parse(m.data);
      if (frame.op === "events") {
        frame.events.forEach(handle);
        ws.send(JSON.stringify({ op: "ack", last_event_id: state.lastEventId }));
      } else if (frame.op === "reload") {
        reload();
      }
    };
    ws.onclose = function () {
      if (state.ws !== ws) return;
      state.ws = null;
      if (!opened) state.wsFailures += 1;
      setTimeout(connect, opened ? 500 : 1000);
    };
  }

  function connectSse() {
    var sse = new EventSource(API + "/realtime/events?" + query());
    state.sse = sse;
    sse.onmessage = function (m) { handle(JSON.parse(m.data)); };
    sse.addEventListener("reload", reload);
  }

  // --- start --------------------------------------------------------------------------------------

  async function start() {
    try {
      state.config = await api("GET", "/inboxes/" + KEY + "/widget-config");
    } catch (e) {
      app.textContent = "The chat is not available.";
      return;
    }
    shell();
    loadSession();
    if (state.token) { await showChat(); return; }
    if (canSkipForm()) {
      var values = {};
      if (identity.name) values.name = identity.name;
      if (identity.email) values.email = identity.email;
      try { await startSession(values); return; } catch (e) { /* fall back to the form */ }
    }
    showForm();
  }

  start();
})();
