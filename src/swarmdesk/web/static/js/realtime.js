// The event-queue protocol (register -> queue id + last event id -> numbered events -> ack ->
// resume after reconnect -> "reload" when the queue is gone), over WebSocket with SSE as fallback.
import { api } from "./api.js";

const ACK_INTERVAL_MS = 1000;

export class Realtime {
  constructor({ register = () => api("POST", "/api/v1/realtime/register"), onState = () => {} } = {}) {
    this.register = register;
    this.onState = onState;
    this.handlers = new Map();
    this.queueId = null;
    this.lastEventId = null;
    this.ws = null;
    this.sse = null;
    this.failures = 0;
    this.stopped = false;
  }

  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return this;
  }

  emit(type, payload) {
    for (const handler of [...(this.handlers.get(type) || []), ...(this.handlers.get("*") || [])]) {
      try { handler(payload); } catch (error) { console.error(error); }
    }
  }

  async start() {
    const registered = await this.register();
    this.queueId = registered.queue_id;
    this.lastEventId = registered.last_event_id;
    this.onState(registered.state);
    this.connect();
    // What happened between the page's rendering and this registration is not in the queue:
    // pages refetch once now.
    this.emit("realtime.ready", {});
  }

  url(path) {
    const query = new URLSearchParams({ queue_id: this.queueId });
    if (this.lastEventId !== null) query.set("last_event_id", String(this.lastEventId));
    return `${path}?${query}`;
  }

  handle(frame) {
    if (this.stopped) return;
    if (frame.op === "reload") { this.reload(); return; }
    if (frame.op !== "events") return;
    for (const event of frame.events) {
      if (this.lastEventId !== null && event.id <= this.lastEventId) continue;
      this.lastEventId = event.id;
      this.emit(event.type, event);
    }
  }

  connect() {
    if (this.stopped) return;
    if (this.failures >= 3 || !("WebSocket" in window)) { this.connectSse(); return; }
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + this.url("/api/v1/realtime/ws"));
    this.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => { opened = true; this.failures = 0; this.emit("realtime.connected", {}); });
    let ackTimer = null;
    let acked = this.lastEventId;
    ws.addEventListener("message", (message) => {
      this.handle(JSON.parse(message.data));
      // At most one ack a second: a reconnect names the last id itself, so the ack only keeps the
      // server's position for a resume without one; an ack per frame would be thousands a second.
      if (this.lastEventId !== acked && ackTimer === null) {
        ackTimer = window.setTimeout(() => {
          ackTimer = null;
          if (ws.readyState === WebSocket.OPEN && this.lastEventId !== acked) {
            acked = this.lastEventId;
            ws.send(JSON.stringify({ op: "ack", last_event_id: acked }));
          }
        }, ACK_INTERVAL_MS);
      }
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws || this.stopped) return;
      if (!opened) this.failures += 1;
      this.emit("realtime.disconnected", {});
      window.setTimeout(() => this.connect(), Math.min(30000, 500 * 2 ** this.failures));
    });
  }

  connectSse() {
    const source = new EventSource(this.url("/api/v1/realtime/events"));
    this.sse = source;
    source.addEventListener("message", (message) => this.handle(JSON.parse(message.data)));
  }

  async reload() {
    if (this.stopped) return;  // e.g. signing out: the page is leaving, not catching up
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
    if (this.sse) { this.sse.close(); this.sse = null; }
    this.lastEventId = null;
    this.emit("realtime.reload", {});
    // Registering again can fail (a deploy, a network blip): keep trying, with backoff.
    for (let attempt = 0; !this.stopped; attempt += 1) {
      try { await this.start(); return; } catch (error) {
        await new Promise((resolve) => window.setTimeout(resolve, Math.min(30000, 1000 * 2 ** attempt)));
      }
    }
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close();
    if (this.sse) this.sse.close();
  }
}
