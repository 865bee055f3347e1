"""The config fields of issue #10 (RoPE scaling, partial rotary, windows, Gemma's traits):
which are optional, and their consistency rules, mirroring core/config_extras.ts and
core/layers.ts; python/config.py validates with them.
"""

from __future__ import annotations

from typing import Any, Callable

#: The values of ``layer_types`` entries (HF ``layer_types``).
LAYER_TYPES = ("sliding_attention", "full_attention")

#: The issue #10 fields: optional, left out of the YAML at their defaults, llama only.
OPTIONAL = frozenset(
    {
        "rope_dimension_count",
        "rope_scaling",
        "rope_scaling_factor",
        "rope_original_context_length",
        "rope_low_freq_factor",
        "rope_high_freq_factor",
        "rope_yarn_beta_fast",
        "rope_yarn_beta_slow",
        "rope_attn_factor",
        "rope_freq_factors",
        "rope_long_factors",
        "rope_short_factors",
        "rope_local_base_freq",
        "qk_norm",
        "query_pre_attn_scalar",
        "attn_logit_softcapping",
        "sliding_window",
        "layer_types",
        "post_norms",
        "embed_scale",
        "final_logit_softcapping",
    }
)

#: The RoPE parameters each scaling kind reads (the others must keep their defaults).
ROPE_PARAMS: dict[str, tuple[str, ...]] = {
    "none": (),
    "linear": ("rope_scaling_factor",),
    "llama3": ("rope_scaling_factor", "rope_original_context_length", "rope_low_freq_factor", "rope_high_freq_factor"),
    "yarn": (
        "rope_scaling_factor",
        "rope_original_context_length",
        "rope_yarn_beta_fast",
        "rope_yarn_beta_slow",
        "rope_attn_factor",
    ),
    "longrope": ("rope_original_context_length", "rope_attn_factor", "rope_long_factors", "rope_short_factors"),
}



def check_llama_extras(
    c: dict[str, Any],
    file: str,
    default: Callable[[str, dict[str, Any]], Any],
    describe: Callable[[Any], str],
    error: Callable[[str, str, str], Exception],
) -> None:
    """Consistency of the issue #10 fields of an ``arch: llama`` config (mirror of
    core/config_extras.ts ``checkLlamaExtras``, same messages).

    Args:
        c: The config's fields, each already checked on its own.
        file: Where it came from, named in errors.
        default: The default of a field for this config.
        describe: A value as error messages show it.
        error: Builds the error for ``(file, field, problem)`` (config.ConfigError).

    Raises:
        The ``error`` naming the file and the field, expected vs actual.
    """
    rd = c["rope_dimension_count"]
    if rd % 2 != 0 or rd > c["head_dim"]:
        raise error(file, "rope_dimension_count", f"must be even and at most head_dim {c['head_dim']}, got {rd}")
    kind = c["rope_scaling"]
    used = ROPE_PARAMS[kind]
    for f in dict.fromkeys(x for params in ROPE_PARAMS.values() for x in params):
        if f not in used and c[f] != default(f, c):
            raise error(file, f, f"is set ({describe(c[f])}) but rope_scaling {kind} does not use it")
    if kind in ("llama3", "yarn", "longrope") and c["rope_original_context_length"] is None:
        raise error(file, "rope_original_context_length", f"is missing (required by rope_scaling {kind})")
    if kind == "llama3" and not c["rope_high_freq_factor"] > c["rope_low_freq_factor"]:
        raise error(
            file,
            "rope_high_freq_factor",
            f"must be greater than rope_low_freq_factor ({describe(c['rope_low_freq_factor'])}), "
            f"got {describe(c['rope_high_freq_factor'])}",
        )
    if kind == "longrope":
        for f in ("rope_long_factors", "rope_short_factors"):
            if c[f] is None:
                raise error(file, f, "is missing (required by rope_scaling longrope)")
            if len(c[f]) != rd // 2:
                raise error(file, f, f"must hold rope_dimension_count / 2 = {rd // 2} values, got {len(c[f])}")
    factors = c["rope_freq_factors"]
    if factors is not None:
        if kind in ("llama3", "yarn", "longrope"):
            raise error(file, "rope_freq_factors", f"cannot be combined with rope_scaling {kind} (give one of them)")
        if len(factors) != rd // 2:
            raise error(
                file, "rope_freq_factors", f"must hold rope_dimension_count / 2 = {rd // 2} values, got {len(factors)}"
            )
    types = c["layer_types"]
    if types is not None:
        if len(types) != c["n_layers"]:
            raise error(file, "layer_types", f"must hold n_layers = {c['n_layers']} entries, got {len(types)}")
        if c["sliding_window"] is None and "sliding_attention" in types:
            raise error(file, "sliding_window", "is missing (layer_types has sliding_attention layers)")
    if c["rope_local_base_freq"] is not None:
        sliding = c["sliding_window"] is not None and (types is None or "sliding_attention" in types)
        if not sliding:
            raise error(
                file,
                "rope_local_base_freq",
                "is set but no layer is a sliding_attention layer (set sliding_window and layer_types)",
            )


def layer_window(c: Any, layer: int) -> int | None:
    """The sliding window of ``layer`` in tokens, or None (mirror of core/config.ts ``layerWindow``)."""
    if c.sliding_window is None:
        return None
    if c.layer_types is None:
        return c.sliding_window
    return c.sliding_window if c.layer_types[layer] == "sliding_attention" else None
