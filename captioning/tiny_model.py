"""Random-weight Florence-2 folders (tiny, or large-shaped) for offline tests and benchmarks.

The tiny shape follows transformers' own Florence-2 test configuration (BART 1+1 layers,
d_model 16, one DaViT stage); the large shape follows Florence-2-large (DaViT 1/1/9/1,
BART-large 12+12, 768 px input). Both get a toy byte-level BPE tokenizer built from a word
list, so nothing is downloaded; the folder loads through the same `from_pretrained` path as
real weights.
"""

from __future__ import annotations

import string
from pathlib import Path

_WORDS = (
    "the image shows a photo of an old red blue green yellow white black house tree dog cat "
    "man woman child car street road sky cloud water river lake mountain field flower grass "
    "building window door table chair wall floor light shadow sun snow beach boat bird horse "
    "in on at with and is are near behind front left right background foreground standing "
    "sitting large small bright dark wooden stone metal glass"
).split()


def build_tokenizer(vocab_size: int):
    """A byte-level BPE tokenizer over words + single characters, padded to `vocab_size`."""
    from transformers import BartTokenizer

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<image>"]
    vocab = {token: i for i, token in enumerate(specials)}
    for ch in string.ascii_letters + string.digits + ".,'":
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault("\u0120" + ch, len(vocab))
    vocab.setdefault("\u0120", len(vocab))
    merges = []
    for word in _WORDS:  # merges build whole words so generated ids decode to words
        piece = "\u0120" + word[0]
        for ch in word[1:]:
            merges.append((piece, ch))
            piece += ch
            vocab.setdefault(piece, len(vocab))
    filler = 0
    while len(vocab) < vocab_size:  # large shapes need a real-sized embedding and LM head
        vocab.setdefault(f"\u0120w{filler}", len(vocab))
        filler += 1
    return BartTokenizer(vocab=vocab, merges=merges,
                         extra_special_tokens={"image_token": "<image>"})


def _shape(shape: str, vocab_size: int) -> tuple[dict, dict, int]:
    text = dict(model_type="bart", vocab_size=vocab_size, eos_token_id=2, bos_token_id=0,
                pad_token_id=1, decoder_start_token_id=2, forced_eos_token_id=2,
                dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    if shape == "tiny":
        text.update(max_position_embeddings=256, encoder_layers=1, decoder_layers=1,
                    encoder_ffn_dim=16, decoder_ffn_dim=16, encoder_attention_heads=1,
                    decoder_attention_heads=1, d_model=16)
        vision = dict(depths=[1], patch_size=[7], patch_stride=[8], patch_padding=[3],
                      patch_prenorm=[False], embed_dim=[16], num_heads=[1], num_groups=[1],
                      window_size=12, drop_path_rate=0.0, projection_dim=16)
        return text, vision, 32
    if shape == "large":
        text.update(max_position_embeddings=1024, encoder_layers=12, decoder_layers=12,
                    encoder_ffn_dim=4096, decoder_ffn_dim=4096, encoder_attention_heads=16,
                    decoder_attention_heads=16, d_model=1024)
        vision = dict(depths=[1, 1, 9, 1], embed_dim=[256, 512, 1024, 2048],
                      num_heads=[8, 16, 32, 64], num_groups=[8, 16, 32, 64], window_size=12,
                      drop_path_rate=0.0, projection_dim=1024)
        return text, vision, 768
    raise ValueError(f"unknown shape {shape!r}; use tiny or large")


def build_random_florence2(folder: Path, shape: str = "tiny", seed: int = 1,
                           init_std: float = 1.0) -> Path:
    """Save a random-weight Florence-2 + processor into `folder`; returns the folder.

    The tiny model's matrices are redrawn with `init_std` (far above the usual 0.02) so its
    greedy output depends on the image and sometimes ends early: tests can tell images
    apart. The large shape keeps the standard initialisation.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    tokenizer = build_tokenizer(51289 if shape == "large" else 400)
    text, vision, pixels = _shape(shape, len(tokenizer))
    # DaViT downsamples by the product of its strides; Florence-2 adds one pooled token.
    stride = 1
    for s in vision.get("patch_stride", [4, 2, 2, 2]):
        stride *= s
    image_tokens = (pixels // stride) ** 2 + 1
    config = Florence2Config(text_config=text, vision_config=vision,
                             image_token_id=tokenizer.image_token_id)
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config).eval()
    if shape == "tiny":
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, init_std)
    image_processor = CLIPImageProcessor(
        size={"height": pixels, "width": pixels}, crop_size={"height": pixels, "width": pixels},
        do_center_crop=False, image_seq_length=image_tokens,
    )
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer,
                                   post_processor_config={"pure_text": {}})
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
