/**
 * The error of the thread pool (runtime/threads.ts, runtime/thread_workers.ts).
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";

/** A step of a thread pool failed: a worker threw, was terminated or timed out. */
export class ThreadError extends GollmError {
  /**
   * Creates the error.
   *
   * @param message One line naming the thread and what happened.
   */
  constructor(message: string) {
    super(message);
    this.name = "ThreadError";
  }
}
