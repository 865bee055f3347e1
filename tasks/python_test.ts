import assert from "node:assert/strict";
import { choosePython, PythonSetupError, ROOT } from "./python.ts";
import { pythonSkipReason } from "../tests/python_probe.ts";

/** A temporary "repository root" with a .venv made by `python3 -m venv --without-pip`: a venv whose setup stopped before pip installed anything. */
async function halfMadeVenv(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "gollm-venv-" });
  const r = await new Deno.Command("python3", {
    args: ["-m", "venv", "--without-pip", `${root}/.venv`],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return root;
}

const noPython = await pythonSkipReason("numpy, tokenizers");
if (noPython) console.log(`skipping the choosePython tests: ${noPython}`);

Deno.test({
  name: "choosePython() passes over a half-made .venv for python3 when python3 has the modules",
  ignore: noPython !== null,
  async fn() {
    const root = await halfMadeVenv();
    try {
      const venv = `${root}/.venv/bin/python`;
      // numpy and tokenizers are installed for python3 but not in the fresh venv (and the
      // repository's tokenizers/ folder in the current directory must not count).
      const { python, note } = await choosePython(["json", "numpy", "tokenizers"], root);
      assert.equal(python, "python3");
      assert.equal(
        note,
        `note: ${venv} lacks numpy, tokenizers; using python3, which has them ` +
          "(`deno task setup:python` finishes .venv; `rm -rf .venv` silences this)",
      );
      // Negative control: a module the venv has keeps the venv.
      assert.deepEqual(await choosePython(["json"], root), { python: venv });
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name: "choosePython() says what each interpreter lacks and how to finish the setup",
  ignore: noPython !== null,
  async fn() {
    const root = await halfMadeVenv();
    try {
      await assert.rejects(
        () => choosePython(["json", "yaml", "no_such_module_gollm"], root),
        (e: Error) => {
          assert.ok(e instanceof PythonSetupError);
          assert.ok(!e.message.includes("\n"));
          assert.match(
            e.message,
            /\/\.venv\/bin\/python lacks pyyaml, no_such_module_gollm and python3 lacks no_such_module_gollm: run `deno task setup:python`/,
          );
          return true;
        },
      );
      // Without a .venv only python3 is named.
      await assert.rejects(
        () => choosePython(["no_such_module_gollm"], `${root}/nowhere`),
        /^PythonSetupError: python3 lacks no_such_module_gollm: run/,
      );
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});

const noTorch = await pythonSkipReason("torch, tiktoken, tokenizers, yaml, safetensors, tqdm");
if (noTorch) console.log(`skipping the Ctrl-C test of deno task train: ${noTorch}`);

Deno.test({
  name: "deno task train: SIGINT stops after the current step, saves ckpt.pt, one line, exit 130",
  ignore: noTorch !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "gollm-sigint-" });
    try {
      const words = "the union of states and the people who govern it with care and reason".split(
        " ",
      );
      const lines: string[] = [];
      for (let i = 0; i < 1500; i++) {
        lines.push(`${words[i % words.length]} ${words[(i * 7) % words.length]} ${i}, ${i * 31}.`);
      }
      await Deno.writeTextFile(`${dir}/corpus.txt`, lines.join("\n") + "\n");
      await Deno.writeTextFile(
        `${dir}/c.yaml`,
        `arch: llama\nvocab_size: 320\ndim: 32\nn_layers: 1\nn_heads: 4\nhidden_dim: 64\n` +
          `context_length: 32\nnorm: rmsnorm\nnorm_eps: 1.0e-5\nmlp: swiglu\ntie_embeddings: true\n` +
          `tokenizer: tokenizer.tiktoken\ntrain:\n  corpus: ${dir}/corpus.txt\n  out_dir: ${dir}/run\n` +
          `  batch_size: 2\n  context: 16\n  max_steps: 100000\n  eval_interval: 2\n  eval_batches: 1\n` +
          `  threads: 1\n`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}tasks/train.ts`, "--config", `${dir}/c.yaml`, "--no-progress"],
        stdout: "piped",
        stderr: "piped",
        stdin: "null",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      // Read stdout to the end (closing it early would break Python's pipe); signal at step 2.
      let signalled = false;
      const stdout = (async () => {
        const dec = new TextDecoder();
        let seen = "";
        for await (const chunk of child.stdout) {
          seen += dec.decode(chunk, { stream: true });
          if (!signalled && /^step 2:/m.test(seen)) {
            signalled = true;
            child.kill("SIGINT"); // to deno only: the task forwards it to Python
          }
        }
        return seen;
      })();
      const status = await child.status;
      await stdout;
      assert.ok(signalled, "training never reached step 2");
      // (tqdm's shard progress bar, redrawn with \r, is not an error line)
      const err = (await stderr).split(/[\r\n]/).filter((l) =>
        l.trim() && !l.startsWith("tokenizing ")
      );
      assert.equal(status.code, 130, `exit ${status.code}: ${err.join("\n")}`);
      assert.equal(err.length, 1, err.join("\n"));
      assert.match(
        err[0],
        /^interrupted: stopped after step \d+; .*ckpt\.pt holds step \d+ \(--resume/,
      );
      await Deno.stat(`${dir}/run/ckpt.pt`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
