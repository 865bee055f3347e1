"""Model and training config: load a gollm YAML file and validate it exactly like core/config.ts.

The model fields and their rules mirror ``core/config.ts`` (``parseConfig``): unknown
fields, missing required fields, wrong types, bad enum values and inconsistent fields are
errors that name the file and the field, e.g.::

    configs/x.yaml: field 'n_heads' must be a positive integer, got 0

A ``train:`` section may sit beside the model fields; :func:`parse_train` validates it
against :data:`TRAIN_DEFAULTS` with the same style of message. An ``sft:`` section
(supervised finetuning, python/sft.py) is validated by :func:`parse_sft` against
:data:`SFT_DEFAULTS`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from config_arch import LAYER_TYPES as _LAYER_TYPES
from config_arch import OPTIONAL as _OPTIONAL
from config_arch import check_llama_extras, layer_window  # noqa: F401 (layer_window: re-exported)


class GollmError(Exception):
    """A user error: bad input file, field or flag. The message is one precise line."""


class ConfigError(GollmError):
    """A config field is missing, unknown, of the wrong type, or inconsistent.

    Message format matches core/errors.ts ``ConfigError``: ``<file>: field '<field>' <problem>``.
    """

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: field '{field}' {problem}")
        self.file = file
        self.field = field


@dataclass(frozen=True)
class ModelConfig:
    """A validated model config; every field filled (defaults applied).

    See docs/DESIGN.md "ModelConfig".

    Derived sizes: ``q_dim = n_heads * head_dim``, ``kv_dim = n_kv_heads * head_dim``.
    """

    arch: str  # "llama" | "gpt2"
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    hidden_dim: int
    context_length: int
    norm: str  # "rmsnorm" | "layernorm"
    norm_eps: float
    rope_theta: float
    rope_style: str  # "half" | "interleaved"
    # issue #10 fields (defaults: off); see core/config.ts for each one's meaning
    rope_dimension_count: int  # dims of each head RoPE rotates (Phi-3 partial_rotary_factor)
    rope_scaling: str  # "none" | "linear" | "llama3" | "yarn" | "longrope"
    rope_scaling_factor: float
    rope_original_context_length: int | None
    rope_low_freq_factor: float
    rope_high_freq_factor: float
    rope_yarn_beta_fast: float
    rope_yarn_beta_slow: float
    rope_attn_factor: float  # cos/sin multiplier (yarn: 0.1 ln(factor) + 1)
    rope_freq_factors: tuple[float, ...] | None  # GGUF rope_freqs.weight
    rope_long_factors: tuple[float, ...] | None  # longrope, context > original (HF long_factor)
    rope_short_factors: tuple[float, ...] | None  # longrope, context <= original (HF short_factor)
    rope_local_base_freq: float | None  # Gemma 3's sliding layers
    attn_bias: bool
    qk_norm: bool  # Qwen3 / Gemma 3 per-head q/k RMSNorm
    query_pre_attn_scalar: float  # attention scale = query_pre_attn_scalar ** -0.5
    attn_logit_softcapping: float | None
    sliding_window: int | None
    layer_types: tuple[str, ...] | None  # "sliding_attention" | "full_attention" per layer
    mlp: str  # "swiglu" | "geglu" | "gelu"
    post_norms: bool  # Gemma sandwich norms
    embed_scale: float
    final_logit_softcapping: float | None
    tie_embeddings: bool
    tokenizer: str

    @property
    def q_dim(self) -> int:
        """Width of the concatenated query heads: ``n_heads * head_dim``."""
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the concatenated key (or value) heads: ``n_kv_heads * head_dim``."""
        return self.n_kv_heads * self.head_dim

    def to_dict(self) -> dict[str, Any]:
        """The fields in canonical order (the order YAML is written in); tuples as lists."""
        return {f: list(v) if isinstance(v, tuple) else v for f in CONFIG_FIELDS for v in [getattr(self, f)]}

    def to_yaml(self) -> str:
        """YAML text, one ``field: value`` line per field, like core/config.ts ``configToYaml``:
        the issue #10 fields are left out while they hold their defaults."""
        d = self.to_dict()
        return "".join(
            f"{k}: {json.dumps(v)}\n" for k, v in d.items() if k not in _OPTIONAL or v != _default(k, d)
        )

    def extensions(self) -> list[str]:
        """The issue #10 fields this config sets (not at their defaults), in canonical order."""
        d = self.to_dict()
        return [k for k in CONFIG_FIELDS if k in _OPTIONAL and d[k] != _default(k, d)]


_NULL = object()  # default of a nullable field: null (off)


def _default_attn_factor(c: dict[str, Any]) -> float:
    if c.get("rope_scaling") == "longrope":  # HF _compute_longrope_parameters
        orig, ctx = c.get("rope_original_context_length"), c.get("context_length")
        if not isinstance(orig, (int, float)) or not isinstance(ctx, (int, float)) or not ctx / orig > 1:
            return 1.0
        return math.sqrt(1 + math.log(ctx / orig) / math.log(orig))
    f = c.get("rope_scaling_factor")
    if c.get("rope_scaling") != "yarn" or not isinstance(f, (int, float)) or not f > 1:
        return 1.0
    return 0.1 * math.log(f) + 1


# name -> (kind, allowed values, default). default None = required; a callable derives it;
# _NULL = nullable, default null. Kinds "numbers" / "strings" are lists.
_FIELDS: dict[str, tuple[str, tuple[str, ...] | None, Any]] = {
    "arch": ("string", ("llama", "gpt2"), None),
    "vocab_size": ("int", None, None),
    "dim": ("int", None, None),
    "n_layers": ("int", None, None),
    "n_heads": ("int", None, None),
    "n_kv_heads": ("int", None, lambda c: c.get("n_heads")),
    "head_dim": ("int", None, lambda c: _div(c.get("dim"), c.get("n_heads"))),
    "hidden_dim": ("int", None, None),
    "context_length": ("int", None, None),
    "norm": ("string", ("rmsnorm", "layernorm"), None),
    "norm_eps": ("number", None, None),
    "rope_theta": ("number", None, 10000),
    "rope_style": ("string", ("half", "interleaved"), "half"),
    "rope_dimension_count": ("int", None, lambda c: c.get("head_dim")),
    "rope_scaling": ("string", ("none", "linear", "llama3", "yarn", "longrope"), "none"),
    "rope_scaling_factor": ("number", None, 1),
    "rope_original_context_length": ("int", None, _NULL),
    "rope_low_freq_factor": ("number", None, 1),
    "rope_high_freq_factor": ("number", None, 4),
    "rope_yarn_beta_fast": ("number", None, 32),
    "rope_yarn_beta_slow": ("number", None, 1),
    "rope_attn_factor": ("number", None, _default_attn_factor),
    "rope_freq_factors": ("numbers", None, _NULL),
    "rope_long_factors": ("numbers", None, _NULL),
    "rope_short_factors": ("numbers", None, _NULL),
    "rope_local_base_freq": ("number", None, _NULL),
    "attn_bias": ("bool", None, False),
    "qk_norm": ("bool", None, False),
    "query_pre_attn_scalar": ("number", None, lambda c: c.get("head_dim")),
    "attn_logit_softcapping": ("number", None, _NULL),
    "sliding_window": ("int", None, _NULL),
    "layer_types": ("strings", _LAYER_TYPES, _NULL),
    "mlp": ("string", ("swiglu", "geglu", "gelu"), None),
    "post_norms": ("bool", None, False),
    "embed_scale": ("number", None, 1),
    "final_logit_softcapping": ("number", None, _NULL),
    "tie_embeddings": ("bool", None, None),
    "tokenizer": ("string", None, "none"),
}

def _default(name: str, c: dict[str, Any]) -> Any:
    fallback = _FIELDS[name][2]
    if fallback is _NULL:
        return None
    v = fallback(c) if callable(fallback) else fallback
    return float(v) if _FIELDS[name][0] == "number" and isinstance(v, (int, float)) else v

#: Every ModelConfig field, in canonical order.
CONFIG_FIELDS: tuple[str, ...] = tuple(_FIELDS)

_IGNORED_SECTIONS = {"train", "sft"}


def _div(a: Any, b: Any) -> Any:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
        q = a / b
        return int(q) if float(q).is_integer() else q
    return None


def _describe(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


def parse_config(raw: Any, file: str) -> ModelConfig:
    """Validate a parsed YAML/JSON object into a :class:`ModelConfig` (mirror of ``parseConfig``).

    Args:
        raw: The parsed mapping (a ``train`` key is allowed and ignored).
        file: Where it came from, named in errors.

    Returns:
        The validated config with defaults filled.

    Raises:
        ConfigError: naming ``file`` and the field, expected vs actual.
    """
    if not isinstance(raw, dict):
        raise ConfigError(file, "<root>", f"must be a mapping of config fields, got {_describe(raw)}")
    for key in raw:
        if key not in _FIELDS and key not in _IGNORED_SECTIONS:
            raise ConfigError(file, str(key), f"is not a known config field (known: {', '.join(CONFIG_FIELDS)})")
    out: dict[str, Any] = {}
    for name, (kind, one_of, fallback) in _FIELDS.items():
        v = raw.get(name)
        if v is None:
            if fallback is None:
                raise ConfigError(file, name, "is missing")
            if fallback is _NULL:
                out[name] = None
                continue
            v = fallback({**raw, **out}) if callable(fallback) else fallback
        nullable = fallback is _NULL
        if kind in ("numbers", "strings"):
            if not isinstance(v, (list, tuple)):
                what = "a list of positive numbers" if kind == "numbers" else f"a list of {' | '.join(one_of or ())}"
                raise ConfigError(file, name, f"must be {what} or null, got {_describe(v)}")
            for i, x in enumerate(v):
                if kind == "numbers" and (
                    isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x <= 0
                ):
                    raise ConfigError(file, name, f"[{i}] must be a positive number, got {_describe(x)}")
                if kind == "strings" and x not in (one_of or ()):
                    raise ConfigError(file, name, f"[{i}] must be one of {' | '.join(one_of or ())}, got {_describe(x)}")
            out[name] = tuple(float(x) for x in v) if kind == "numbers" else tuple(v)
            continue
        null = " or null" if nullable else ""
        if kind == "int":
            if not _is_int(v) or v <= 0:
                raise ConfigError(file, name, f"must be a positive integer{null}, got {_describe(v)}")
            v = int(v)
        elif kind == "number":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(file, name, f"must be a positive number{null}, got {_describe(v)}")
            v = float(v)
        elif kind == "bool":
            if not isinstance(v, bool):
                raise ConfigError(file, name, f"must be true or false, got {_describe(v)}")
        else:
            if not isinstance(v, str) or not v:
                raise ConfigError(file, name, f"must be a non-empty string, got {_describe(v)}")
            if one_of and v not in one_of:
                raise ConfigError(file, name, f"must be one of {' | '.join(one_of)}, got {_describe(v)}")
        out[name] = v
    if out["n_heads"] % out["n_kv_heads"] != 0:
        raise ConfigError(file, "n_kv_heads", f"must divide n_heads ({out['n_heads']}), got {out['n_kv_heads']}")
    if raw.get("head_dim") is None and out["dim"] % out["n_heads"] != 0:
        raise ConfigError(
            file,
            "head_dim",
            f"is missing and dim ({out['dim']}) is not divisible by n_heads ({out['n_heads']}); set head_dim",
        )
    if out["arch"] == "llama":
        if out["head_dim"] % 2 != 0:
            raise ConfigError(file, "head_dim", f"must be even for RoPE, got {out['head_dim']}")
        if out["norm"] != "rmsnorm":
            raise ConfigError(file, "norm", f'must be rmsnorm for arch llama, got "{out["norm"]}"')
        if out["mlp"] not in ("swiglu", "geglu"):
            raise ConfigError(file, "mlp", f'must be swiglu or geglu for arch llama, got "{out["mlp"]}"')
        check_llama_extras(out, file, _default, _describe, ConfigError)
    else:
        if out["norm"] != "layernorm":
            raise ConfigError(file, "norm", f'must be layernorm for arch gpt2, got "{out["norm"]}"')
        if out["mlp"] != "gelu":
            raise ConfigError(file, "mlp", f'must be gelu for arch gpt2, got "{out["mlp"]}"')
        if out["attn_bias"] is False and raw.get("attn_bias") is not None:
            raise ConfigError(file, "attn_bias", "must be true or absent for arch gpt2 (gpt2 always has bias)")
        out["attn_bias"] = True
        for f in CONFIG_FIELDS:
            if f in _OPTIONAL and _plain(out[f]) != _default(f, out):
                raise ConfigError(file, f, f"applies to arch llama only (got {_describe(_plain(out[f]))})")
    return ModelConfig(**out)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads YAML 1.2 floats such as ``1e-5`` (as js-yaml does)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file as a mapping.

    Raises:
        ConfigError: when the file cannot be read or is not valid YAML.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(file, "<file>", f"cannot be read: {e.strerror or e}") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (safe loader subclass)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else "parse error"
        raise ConfigError(file, "<yaml>", f"is not valid YAML: {first}") from None
    return raw


def load_config(path: str | Path) -> ModelConfig:
    """Read and validate a YAML model config file (the ``train:`` section is ignored here)."""
    return parse_config(read_yaml(path), str(path))


@dataclass(frozen=True)
class TrainConfig:
    """The ``train:`` section of a config. Paths are relative to the current directory (repo root).

    The dataclass defaults are what :func:`parse_train` fills in for fields the ``train:``
    section leaves out, except ``out_dir`` (default ``runs/<config file stem>``) and ``context``
    (default ``min(256, context_length)``), which depend on the config file.

    Attributes:
        corpus: UTF-8 text file to train the tokenizer and the model on.
        out_dir: Where the tokenizer, shards, checkpoint and log go.
        special_tokens: Special tokens appended after the BPE ranks (first is BOS, second EOS).
        batch_size: Sequences per micro-batch.
        context: Tokens per training sequence (≤ context_length).
        max_steps: Optimizer steps.
        lr: Peak learning rate (after warmup).
        min_lr: Final learning rate at the end of cosine decay.
        warmup_steps: Linear warmup steps.
        weight_decay: AdamW weight decay (matrices and embeddings only).
        beta1, beta2: AdamW betas.
        grad_clip: Max global grad norm (0 = off).
        grad_accum: Micro-batches per optimizer step.
        eval_interval: Steps between validation evaluations (and checkpoints).
        eval_batches: Batches averaged per validation loss.
        log_interval: Steps between JSONL log lines.
        seed: RNG seed.
        val_fraction: Fraction of the corpus kept for validation (the tail).
        threads: torch CPU threads (0 = torch's default).
        device: ``auto`` | ``cpu`` | ``cuda``.
        compile: ``auto`` (on CUDA) | true | false.
        dropout: Dropout probability on attention/MLP outputs during training.
    """

    corpus: str = "data/sotu/corpus.txt"
    out_dir: str = "runs/default"
    special_tokens: tuple[str, ...] = ("<|bos|>", "<|eos|>")
    batch_size: int = 16
    context: int = 256
    max_steps: int = 1000
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 100
    eval_batches: int = 10
    log_interval: int = 10
    seed: int = 1337
    val_fraction: float = 0.05
    threads: int = 0
    device: str = "auto"
    compile: Any = "auto"
    dropout: float = 0.0


TRAIN_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


#: Numeric train fields that may be 0 (the others must be positive).
_TRAIN_NONNEG = frozenset({"warmup_steps", "seed", "threads", "weight_decay", "grad_clip", "min_lr", "dropout"})


def _parse_section(
    raw: Any, section: str, defaults: dict[str, Any], file: str, nonneg: frozenset[str]
) -> dict[str, Any]:
    """Validate the fields a ``<section>:`` mapping sets against the types of ``defaults``.

    ``compile`` (auto | true | false), ``device`` (auto | cpu | cuda) and tuple-valued fields
    (a list of non-empty strings) have their own rules; strings must be non-empty (a default of
    "" means "derived": any non-empty string), numbers finite, and non-negative when named in
    ``nonneg``, else positive.

    Returns:
        Only the fields the section sets, converted (int, float, tuple).

    Raises:
        ConfigError: naming ``<section>.<field>`` for an unknown field or a bad value.
    """
    sec = raw.get(section) if isinstance(raw, dict) else None
    if sec is None:
        sec = {}
    if not isinstance(sec, dict):
        raise ConfigError(file, section, f"must be a mapping, got {_describe(sec)}")
    out: dict[str, Any] = {}
    for key, v in sec.items():
        name = f"{section}.{key}"
        if key not in defaults:
            raise ConfigError(file, name, f"is not a known {section} field (known: {', '.join(defaults)})")
        default = defaults[key]
        if key == "compile":
            if v not in ("auto", True, False):
                raise ConfigError(file, name, f"must be auto, true or false, got {_describe(v)}")
        elif key == "device":
            if v not in ("auto", "cpu", "cuda"):
                raise ConfigError(file, name, f"must be one of auto | cpu | cuda, got {_describe(v)}")
        elif key == "special_tokens":
            if not isinstance(v, list) or len(v) < 2 or not all(isinstance(s, str) and s for s in v):
                raise ConfigError(file, name, "must be a list of at least two strings (BOS, EOS)")
            v = tuple(v)
        elif isinstance(default, tuple):
            if not isinstance(v, list) or not v or not all(isinstance(s, str) and s for s in v):
                raise ConfigError(file, name, "must be a non-empty list of strings")
            v = tuple(v)
        elif isinstance(default, str):
            if not isinstance(v, str) or not v:
                raise ConfigError(file, name, f"must be a non-empty string, got {_describe(v)}")
        elif isinstance(default, int) and not isinstance(default, bool):
            ok0 = key in nonneg
            if not _is_int(v) or v < 0 or (v == 0 and not ok0):
                what = "a non-negative" if ok0 else "a positive"
                raise ConfigError(file, name, f"must be {what} integer, got {_describe(v)}")
            v = int(v)
        elif isinstance(default, float):
            ok0 = key in nonneg
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
                or (v == 0 and not ok0)
            ):
                what = "a non-negative" if ok0 else "a positive"
                raise ConfigError(file, name, f"must be {what} number, got {_describe(v)}")
            v = float(v)
        out[key] = v
    return out


def parse_train(raw: Any, file: str, model: ModelConfig) -> TrainConfig:
    """Validate the ``train:`` section of a config file.

    Fields the section leaves out take :data:`TRAIN_DEFAULTS`, except ``out_dir``
    (``runs/<stem of file>``) and ``context`` (``min(256, model.context_length)``).

    Args:
        raw: The whole parsed YAML mapping (its ``train`` key is read; absent or empty = defaults).
        file: The config path, named in errors.
        model: The validated model config (``context`` must not exceed ``context_length``).

    Raises:
        ConfigError: naming ``train.<field>`` for an unknown field or a bad value.
    """
    vals = {
        **TRAIN_DEFAULTS,
        "out_dir": f"runs/{Path(file).stem}",
        "context": min(TRAIN_DEFAULTS["context"], model.context_length),
        **_parse_section(raw, "train", TRAIN_DEFAULTS, file, nonneg=_TRAIN_NONNEG),
    }
    t = TrainConfig(**vals)
    if t.context > model.context_length:
        raise ConfigError(
            file, "train.context", f"must be at most context_length ({model.context_length}), got {t.context}"
        )
    if not 0 < t.val_fraction < 0.5:
        raise ConfigError(file, "train.val_fraction", f"must be between 0 and 0.5, got {t.val_fraction}")
    if t.dropout >= 1:
        raise ConfigError(file, "train.dropout", f"must be below 1, got {t.dropout}")
    if t.beta1 >= 1 or t.beta2 >= 1:
        raise ConfigError(file, "train.beta1" if t.beta1 >= 1 else "train.beta2", "must be below 1")
    return t


def load_train_config(path: str | Path, needed_by: str = "deno task train") -> tuple[ModelConfig, TrainConfig]:
    """Read a YAML config with a ``train:`` section; validate both parts.

    Args:
        path: The YAML file.
        needed_by: The command that needs the section, named when it is missing.

    Raises:
        ConfigError: for any problem in either part.
        GollmError: when the file has no ``train:`` key, e.g.
            ``configs/x.yaml: no 'train:' section (needed by deno task train); see configs/tiny.yaml``.
    """
    raw = read_yaml(path)
    model = parse_config(raw, str(path))
    if "train" not in raw:
        raise GollmError(f"{path}: no 'train:' section (needed by {needed_by}); see configs/tiny.yaml")
    return model, parse_train(raw, str(path), model)


#: The default projections LoRA adapts: every linear layer of the attention and the MLP.
LORA_TARGETS: tuple[str, ...] = ("wq", "wk", "wv", "wo", "w1", "w2", "w3")


@dataclass(frozen=True)
class SftConfig:
    """The ``sft:`` section of a config: supervised finetuning on chat data (python/sft.py).

    Empty strings are filled by :func:`parse_sft` from the config file; paths are relative to
    the current directory (the repository root).

    Attributes:
        base: The model to finetune: a gollm model directory or a training checkpoint
            (default ``<train.out_dir>/ckpt.pt``).
        data: JSONL file, one ``{"messages": [{"role", "content"}, ...]}`` per line.
        out_dir: Where the log, ``ckpt.pt`` and the exported ``model/`` go
            (default ``<train.out_dir>/sft``).
        chat_template: Jinja chat template file (default: the base's ``chat_template.jinja``,
            else python/chat_template.jinja).
        batch_size: Conversations per micro-batch (padded to the longest).
        context: Most tokens per conversation (longer ones are dropped); ≤ context_length.
        max_steps: Optimizer steps.
        lr, min_lr, warmup_steps: Peak learning rate, linear warmup, cosine decay to ``min_lr``.
        weight_decay, beta1, beta2, grad_clip, grad_accum: AdamW and clipping, as in ``train:``.
        eval_interval: Steps between validation losses (assistant tokens only).
        log_interval: Steps between JSONL log lines.
        seed: RNG seed (data order, validation split, LoRA init).
        val_fraction: Fraction of the conversations kept for validation (0: validate on the
            training conversations).
        threads, device, dropout: As in ``train:``.
        lora_rank: LoRA rank r (0: full finetuning). LoRA trains ``B @ A`` (B: out×r, A: r×in)
            beside each frozen target weight and merges ``W + (lora_alpha / r) B A`` at export.
        lora_alpha: LoRA scaling numerator.
        lora_dropout: Dropout on the LoRA branch's input.
        lora_targets: Linear layers to adapt (canonical names: wq wk wv wo w1 w2 w3).
        dtype: Exported weights: ``f32`` | ``f16`` | ``bf16``.
    """

    base: str = ""
    data: str = ""
    out_dir: str = ""
    chat_template: str = ""
    batch_size: int = 8
    context: int = 0
    max_steps: int = 200
    lr: float = 5e-4
    min_lr: float = 5e-5
    warmup_steps: int = 10
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    grad_accum: int = 1
    eval_interval: int = 50
    log_interval: int = 10
    seed: int = 1337
    val_fraction: float = 0.05
    threads: int = 0
    device: str = "auto"
    dropout: float = 0.0
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    dtype: str = "f32"


SFT_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(SftConfig)}
_SFT_NONNEG = _TRAIN_NONNEG | {"lora_rank", "lora_dropout", "val_fraction", "context"}


def parse_sft(raw: Any, file: str, model: ModelConfig, overrides: dict[str, Any] | None = None) -> SftConfig:
    """Validate the ``sft:`` section of a config file (absent: all defaults), with overrides.

    Args:
        raw: The whole parsed YAML mapping.
        file: The config path, named in errors.
        model: The validated model config.
        overrides: Command-line values that replace the section's (``--data``, ``--lora-rank``,
            ...), validated the same way and named ``sft.<field>`` in errors.

    Returns:
        The config with ``out_dir`` (``<train.out_dir>/sft``), ``base``
        (``<train.out_dir>/ckpt.pt``) and ``context`` (``context_length``) filled when unset.

    Raises:
        ConfigError: naming ``sft.<field>`` for an unknown field or a bad value.
    """
    vals = {**SFT_DEFAULTS, **_parse_section(raw, "sft", SFT_DEFAULTS, file, nonneg=_SFT_NONNEG)}
    if overrides:
        given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items() if v is not None}
        vals.update(_parse_section({"sft": given}, "sft", SFT_DEFAULTS, file, nonneg=_SFT_NONNEG))
    train_out = parse_train(raw, file, model).out_dir if isinstance(raw, dict) and "train" in raw else None
    train_out = train_out or f"runs/{Path(file).stem}"
    vals["out_dir"] = vals["out_dir"] or str(Path(train_out) / "sft")
    vals["base"] = vals["base"] or str(Path(train_out) / "ckpt.pt")
    vals["context"] = vals["context"] or model.context_length
    c = SftConfig(**vals)
    if c.context > model.context_length:
        raise ConfigError(
            file, "sft.context", f"must be at most context_length ({model.context_length}), got {c.context}"
        )
    if not 0 <= c.val_fraction < 0.5:
        raise ConfigError(file, "sft.val_fraction", f"must be at least 0 and below 0.5, got {c.val_fraction}")
    for name, v in (
        ("sft.dropout", c.dropout),
        ("sft.lora_dropout", c.lora_dropout),
        ("sft.beta1", c.beta1),
        ("sft.beta2", c.beta2),
    ):
        if v >= 1:
            raise ConfigError(file, name, f"must be below 1, got {v}")
    if c.dtype not in ("f32", "f16", "bf16"):
        raise ConfigError(file, "sft.dtype", f"must be one of f32 | f16 | bf16, got {_describe(c.dtype)}")
    bad = [t for t in c.lora_targets if t not in LORA_TARGETS]
    if bad:
        raise ConfigError(file, "sft.lora_targets", f"must name layers among {' '.join(LORA_TARGETS)}, got {bad[0]!r}")
    return c


def load_sft_config(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[ModelConfig, SftConfig]:
    """Read a YAML config and validate its model fields and ``sft:`` section (see :func:`parse_sft`).

    Raises:
        ConfigError: for any problem in either part.
    """
    raw = read_yaml(path)
    model = parse_config(raw, str(path))
    return model, parse_sft(raw, str(path), model, overrides)
