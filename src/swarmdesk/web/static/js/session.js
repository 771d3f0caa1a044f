// Who is signed in (from <body data-…>) and the one real-time connection every module shares.
import { Realtime } from "./realtime.js";

const body = document.body;
export const me = { id: Number(body.dataset.userId), name: body.dataset.userName, role: body.dataset.role };
export const realtime = new Realtime();

export function shortcutsEnabled() {
  try { return localStorage.getItem("swarmdesk:shortcuts") !== "off"; } catch (e) { return true; }
}
