/* Swarmdesk web chat: the one script tag a site adds.
 *
 *   <script src="https://desk.example.com/widget/PUBLIC_KEY.js" async></script>
 *
 * Logged-in visitors: data-user-id, data-user-hash (hex HMAC-SHA256 of the user id with the inbox's
 * identity secret, computed on your server), data-user-email, data-user-email-hash (the same HMAC of
 * the lower-case email: the visitor is then the same customer on email, SMS…), data-user-name on the
 * tag, or the same as window.SwarmdeskSettings = {user_id, user_hash, email, email_hash, name}.
 *
 * The launcher lives in a shadow root (the page's CSS cannot reach it); the chat itself is a frame
 * on the Swarmdesk origin, so the visitor's token never touches the page and the API needs no CORS.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.Swarmdesk) return;
  var match = /^(https?:\/\/[^\/?#]+)\/widget\/([A-Za-z0-9_-]+)\.js(?:[?#].*)?$/.exec(script.src);
  if (!match) return;
  var origin = match[1], key = match[2];
  var settings = window.SwarmdeskSettings || {};
  var identity = {
    user_id: script.getAttribute("data-user-id") || settings.user_id || "",
    user_hash: script.getAttribute("data-user-hash") || settings.user_hash || "",
    email: script.getAttribute("data-user-email") || settings.email || "",
    email_hash: script.getAttribute("data-user-email-hash") || settings.email_hash || "",
    name: script.getAttribute("data-user-name") || settings.name || ""
  };
  var params = new URLSearchParams();
  Object.keys(identity).forEach(function (k) { if (identity[k]) params.set(k, String(identity[k])); });

  var host = document.createElement("div");
  host.id = "swarmdesk-chat";
  var root = host.attachShadow({ mode: "open" });
  var launcher = document.createElement("button");
  launcher.type = "button";
  launcher.className = "launcher";
  launcher.setAttribute("aria-label", "Open chat");
  launcher.textContent = "Chat";
  var frame = document.createElement("iframe");
  frame.title = "Chat";
  frame.className = "panel";
  // The identity rides in the fragment: it is never sent to the server in the frame's URL.
  frame.src = origin + "/widget/" + key + "/frame#" + params.toString();
  // Styles through the CSSOM, not a <style> element: works under the page's own CSP.
  function css(el, rules) { Object.keys(rules).forEach(function (p) { el.style.setProperty(p, rules[p]); }); }
  css(host, { position: "fixed", right: "20px", bottom: "20px", "z-index": "2147483000" });
  css(launcher, { "border-radius": "24px", border: "0", padding: "12px 20px", "font": "600 15px system-ui, sans-serif",
                  background: "#2f5bea", color: "#fff", cursor: "pointer", "box-shadow": "0 4px 14px rgba(0,0,0,.2)",
                  float: "right" });
  css(frame, { display: "none", width: "370px", height: "560px", "max-height": "calc(100vh - 100px)",
               "max-width": "calc(100vw - 40px)", border: "0", "border-radius": "12px", "margin-bottom": "12px",
               background: "#fff", "box-shadow": "0 8px 30px rgba(0,0,0,.25)" });
  root.appendChild(frame);
  root.appendChild(document.createElement("br"));
  root.appendChild(launcher);

  var isOpen = false;
  function post(msg) { if (frame.contentWindow) frame.contentWindow.postMessage(msg, origin); }
  function open() { isOpen = true; frame.style.display = "block"; launcher.textContent = "Close"; post({ type: "swarmdesk:open" }); }
  function close() { isOpen = false; frame.style.display = "none"; launcher.textContent = "Chat"; }
  launcher.addEventListener("click", function () { if (isOpen) close(); else open(); });
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var data = event.data || {};
    if (data.type === "swarmdesk:close") close();
    else if (data.type === "swarmdesk:unread" && !isOpen) launcher.textContent = "Chat (new)";
    else if (data.type === "swarmdesk:config") {
      if (/^#[0-9a-fA-F]{6}$/.test(data.color || "")) launcher.style.background = data.color;
      if (/^#[0-9a-fA-F]{6}$/.test(data.text_color || "")) launcher.style.color = data.text_color;
    }
  });
  window.Swarmdesk = { open: open, close: close };
  function mount() { document.body.appendChild(host); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
