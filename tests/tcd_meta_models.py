"""Full-size model layouts for free: the host's own models built on the ``meta`` device (real keys and shapes, no
memory) from what the host's own detection makes of a stub of the checkpoint's keys (``comfy.model_detection``),
exactly as the host loads the real file. Stubs hold only the tensors detection reads, with the published shapes.
"""
from __future__ import annotations

import torch

META = torch.device("meta")


def t(*shape):
    return torch.empty(shape, device=META)


def full_unet_config(name):
    """The full UNet configs of stock SDXL and SD1.5, as in the host's detection tables (comfy/model_detection.py,
    v0.3.75); ``build`` checks that the host's own detection picks the stock class for each."""
    sdxl = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
            'legacy': False, 'num_classes': 'sequential', 'adm_in_channels': 2816, 'dtype': None, 'in_channels': 4,
            'model_channels': 320, 'num_res_blocks': [2, 2, 2], 'transformer_depth': [0, 0, 2, 2, 10, 10],
            'channel_mult': [1, 2, 4], 'transformer_depth_middle': 10, 'use_linear_in_transformer': True,
            'context_dim': 2048, 'num_head_channels': 64, 'transformer_depth_output': [0, 0, 0, 2, 2, 2, 10, 10, 10],
            'use_temporal_attention': False, 'use_temporal_resblock': False}
    sd15 = {'use_checkpoint': False, 'image_size': 32, 'out_channels': 4, 'use_spatial_transformer': True,
            'legacy': False, 'adm_in_channels': None, 'dtype': None, 'in_channels': 4, 'model_channels': 320,
            'num_res_blocks': [2, 2, 2, 2], 'transformer_depth': [1, 1, 1, 1, 1, 1, 0, 0],
            'channel_mult': [1, 2, 4, 4], 'transformer_depth_middle': 1, 'use_linear_in_transformer': False,
            'context_dim': 768, 'num_heads': 8, 'transformer_depth_output': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
            'use_temporal_attention': False, 'use_temporal_resblock': False}
    return {"SDXL": sdxl, "SD1.5": sd15}[name]


def flux_stub():
    """Flux-dev: hidden 3072, 19 double + 38 single blocks, T5 4096 / CLIP-L 768 inputs, guidance."""
    sd = {"img_in.weight": t(3072, 64), "txt_in.weight": t(3072, 4096), "vector_in.in_layer.weight": t(3072, 768),
          "guidance_in.in_layer.weight": t(3072, 256)}
    sd.update({f"double_blocks.{i}.img_attn.norm.key_norm.scale": t(128) for i in range(19)})
    sd.update({f"single_blocks.{i}.linear1.weight": t(21504, 3072) for i in range(38)})
    return sd


def sd3_stub(depth, pos, attn2):
    """SD3.5: ``depth`` joint blocks (hidden 64 x depth), pos x pos positions, self-attention in the first ``attn2``."""
    h = 64 * depth
    sd = {"x_embedder.proj.weight": t(h, 16, 2, 2), "final_layer.linear.weight": t(64, h),
          "y_embedder.mlp.0.weight": t(h, 2048), "context_embedder.weight": t(h, 4096), "pos_embed": t(1, pos * pos, h)}
    for i in range(depth):
        sd[f"joint_blocks.{i}.context_block.attn.qkv.weight"] = t(3 * h, h)
        sd[f"joint_blocks.{i}.context_block.attn.ln_q.weight"] = t(64)
    sd.update({f"joint_blocks.{i}.x_block.attn2.qkv.weight": t(3 * h, h) for i in range(attn2)})
    return sd


def qwen_stub():
    """Qwen-Image: 60 transformer blocks of width 3072, Qwen2.5-VL text features (3584) through txt_norm, 64 latent
    channels in (16 x 2 x 2 patches) and out."""
    sd = {"txt_norm.weight": t(3584), "img_in.weight": t(3072, 64), "proj_out.weight": t(64, 3072)}
    sd.update({f"transformer_blocks.{i}.attn.to_q.weight": t(3072, 3072) for i in range(60)})
    return sd


def wan_stub(dim, layers, ffn, in_dim, out_dim, clip_image=False):
    """Wan: ``layers`` blocks of width ``dim`` (heads of 128) and FFN ``ffn``, patch embedding from ``in_dim`` latent
    channels, ``out_dim`` out; ``clip_image``: Wan 2.1 I2V's CLIP image embedding (img_emb)."""
    sd = {"head.modulation": t(1, 2, dim), "head.head.weight": t(out_dim * 4, dim),
          "blocks.0.ffn.0.weight": t(ffn, dim), "patch_embedding.weight": t(dim, in_dim, 1, 2, 2)}
    sd.update({f"blocks.{i}.self_attn.q.weight": t(dim, dim) for i in range(layers)})
    if clip_image:
        sd["img_emb.proj.0.bias"] = t(1280)
    return sd


# name -> (stub of the checkpoint's keys (None: a UNet config), the host class its detection must give)
# The two Wan 2.2 A14B experts (high noise, low noise) are separate checkpoints of one layout (same keys and shapes):
# one stub stands for both.
LAYOUTS = {
    "SDXL": (None, "SDXL"),
    "SD1.5": (None, "SD15"),
    "Flux-dev": (flux_stub, "Flux"),
    "SD3.5 large": (lambda: sd3_stub(38, 192, 0), "SD3"),
    "SD3.5 medium": (lambda: sd3_stub(24, 384, 13), "SD3"),
    "Qwen-Image": (qwen_stub, "QwenImage"),
    "Wan 2.1 1.3B": (lambda: wan_stub(1536, 30, 8960, 16, 16), "WAN21_T2V"),
    "Wan 2.1 14B T2V": (lambda: wan_stub(5120, 40, 13824, 16, 16), "WAN21_T2V"),
    "Wan 2.1 14B I2V": (lambda: wan_stub(5120, 40, 13824, 36, 16, clip_image=True), "WAN21_I2V"),
    "Wan 2.2 TI2V 5B": (lambda: wan_stub(3072, 30, 14336, 48, 48), "WAN22_T2V"),
    "Wan 2.2 A14B T2V (high/low noise)": (lambda: wan_stub(5120, 40, 13824, 16, 16), "WAN21_T2V"),
    "Wan 2.2 A14B I2V (high/low noise)": (lambda: wan_stub(5120, 40, 13824, 36, 16), "WAN21_T2V"),
}


def build(name):
    """The host's BaseModel for layout ``name`` on the meta device, from the host's own detection; AssertionError
    when the host detects another class than LAYOUTS says."""
    import comfy.model_detection as md
    import comfy.supported_models as sm
    stub, cls = LAYOUTS[name]
    if stub is None:
        cfg = md.model_config_from_unet_config(dict(full_unet_config(name)))
    else:
        sd = stub()
        cfg = md.model_config_from_unet_config(md.detect_unet_config(sd, ""), sd)
    assert type(cfg) is getattr(sm, cls), f"the host detects {type(cfg).__name__} for {name}, not {cls}"
    return cfg.get_model({}, device=META)
