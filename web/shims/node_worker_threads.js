// node:worker_threads for gollm's browser build (web/gollm.ts): the thread pool starts
// Node-style workers; in a page, gollm runs on one thread (loadModel(..., { threads: 1 })).
export class Worker {
  constructor() {
    throw new Error("gollm's browser build runs on one thread: pass { threads: 1 }");
  }
}
