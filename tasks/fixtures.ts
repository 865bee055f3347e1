/**
 * `deno task fixtures`: regenerates tests/fixtures/pytorch/ (random-weight models, a briefly
 * trained tiny model, PyTorch logits and greedy ids) with python/fixtures.py.
 *
 * @module
 */
import { main } from "./python.ts";

if (import.meta.main) await main("fixtures.py");
