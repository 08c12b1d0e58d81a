// The service worker: the console's own files (the app shell) from a cache when the network is gone, so a child
// director can open the visit form offline. The API (/v1/...) is never cached here: recorded visits wait in the
// page's IndexedDB outbox (queue.js), the worklist in its answers store, both cleared or sent by the page.

const CACHE = "huhang-console-v1";
const SHELL = ["./", "index.html", "styles.css", "app.js", "api.js", "dom.js", "i18n.js", "queue.js", "store.js",
  "pages/signin.js", "pages/director.js", "pages/officer.js", "pages/audit.js", "pages/indicators.js",
  "i18n/zh-CN.json", "i18n/en.json"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

// The shell: network first (a new version shows at once), the cache when offline.
self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (!url.pathname.startsWith(new URL("./", self.location).pathname)) return;
  event.respondWith(fetch(event.request)
    .then((answer) => {
      if (answer.ok) {
        const copy = answer.clone();
        caches.open(CACHE).then((cache) => cache.put(event.request, copy));
      }
      return answer;
    })
    .catch(() => caches.match(event.request, { ignoreSearch: true })
      .then((hit) => hit || caches.match("index.html"))));
});
