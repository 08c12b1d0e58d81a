// The offline queue: a form's request is saved first (IndexedDB, with a new Idempotency-Key), then sent in order
// when the network allows: at once, when `online` fires, and every SYNC_INTERVAL_MS. The server keeps the key, so a
// request sent twice (the answer lost on the way back) is recorded once and answered again ("replayed").
//   2xx (or a replayed answer): done, removed;
//   401: kept, sign in again;  408, 409 (in flight), 429, 5xx, network error: kept, tried again later;
//   any other 4xx: kept as failed, with the problem's field errors, for the person to fix or discard.

import { api, session, Unauthorized } from "./api.js";
import { outbox } from "./store.js";

const SYNC_INTERVAL_MS = 15000;
const RETRY = new Set([401, 408, 409, 429]);
const listeners = new Set();
let syncing = null;

function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function onChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

async function changed(event) {
  const items = await outbox.all();
  for (const listener of listeners) listener(items, event);
}

export async function enqueue({ path, body, kind, childId }) {
  await outbox.add({
    key: uuid4(), path, body, kind, childId, state: "waiting", created: new Date().toISOString(), problem: null,
  });
  await changed(null);
  return sync();
}

export async function discard(seq) {
  await outbox.remove(seq);
  await changed(null);
}

export function pending() {
  return outbox.all();
}

// One sync at a time (a second call waits for the running one): each item is sent by one sync only.
export function sync() {
  if (!syncing) {
    syncing = drain().finally(() => {
      syncing = null;
    });
  }
  return syncing;
}

async function drain() {
  if (!session.token) return;
  const items = (await outbox.all()).filter((i) => i.state === "waiting").sort((a, b) => a.seq - b.seq);
  for (const item of items) {
    if (!navigator.onLine) return;
    let answer;
    try {
      answer = await api(item.path, { method: "POST", body: item.body, headers: { "Idempotency-Key": item.key } });
    } catch (error) {
      if (!(error instanceof Unauthorized)) console.warn("queue: not sent yet", error.name);
      await changed(null);
      return; // offline, or signed out: the rest waits, in order
    }
    if (answer.ok) {
      await outbox.remove(item.seq);
      await changed({ sent: item, answer: answer.body, replayed: answer.replayed });
    } else if (RETRY.has(answer.status) || answer.status >= 500) {
      await changed(null);
      return;
    } else {
      await outbox.put({ ...item, state: "failed", problem: answer.body });
      await changed({ failed: item, problem: answer.body });
    }
  }
}

export function startSync() {
  window.addEventListener("online", () => sync());
  setInterval(() => {
    if (navigator.onLine) sync();
  }, SYNC_INTERVAL_MS);
  return sync();
}
