// node:worker_threads in gollm's browser build (web/bundle_imports.json maps it here inside
// the bundle): in a browser runtime/threads.ts starts Web Workers instead, so nothing
// reaches this.
export class Worker {
  constructor() {
    throw new Error("node:worker_threads in a browser: runtime/threads.ts uses Web Workers");
  }
}
