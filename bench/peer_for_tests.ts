/**
 * Test helper: the installed llama.cpp peer, or null with a printed reason, so a test that
 * needs the peer can `ignore: PEER === null` and say why it is skipped.
 *
 * The peer is installed on first use (bench/llama_cpp.ts installPeer(), a minute at most
 * with the npm registry reachable); `GOLLM_PEER_INSTALL=0` only uses an existing install.
 *
 * @module
 */
import { GollmError } from "../core/errors.ts";
import { installPeer } from "./llama_cpp.ts";

async function findPeer(): Promise<string | null> {
  try {
    return await installPeer({
      installIfMissing: Deno.env.get("GOLLM_PEER_INSTALL") !== "0",
      onProgress: (m) => console.log(m),
    });
  } catch (e) {
    if (!(e instanceof GollmError)) throw e;
    console.log(`skip llama.cpp peer tests: ${e.message}`);
    return null;
  }
}

/** The installed peer folder, or null (the reason was printed). */
export const PEER: string | null = await findPeer();
