// IndexedDB: the outbox of recorded visits and contacts waiting to be sent, and cached answers (the worklist and
// the children's names, for a director working offline). Sign-out clears the cached answers.

const DB = "huhang-console";
const OUTBOX = "outbox";
const ANSWERS = "answers";
let opened = null;

function database() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const request = indexedDB.open(DB, 1);
      request.onupgradeneeded = () => {
        const db = request.result;
        db.createObjectStore(OUTBOX, { keyPath: "seq", autoIncrement: true });
        db.createObjectStore(ANSWERS);
      };
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  }
  return opened;
}

async function run(store, mode, work) {
  const db = await database();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(store, mode);
    const result = work(tx.objectStore(store));
    tx.oncomplete = () => resolve(result && "result" in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

export const outbox = {
  add: (item) => run(OUTBOX, "readwrite", (s) => s.add(item)),
  put: (item) => run(OUTBOX, "readwrite", (s) => s.put(item)),
  remove: (seq) => run(OUTBOX, "readwrite", (s) => s.delete(seq)),
  all: () => run(OUTBOX, "readonly", (s) => s.getAll()),
};

export const answers = {
  get: (key) => run(ANSWERS, "readonly", (s) => s.get(key)),
  put: (key, value) => run(ANSWERS, "readwrite", (s) => s.put(value, key)),
  clear: () => run(ANSWERS, "readwrite", (s) => s.clear()),
};
