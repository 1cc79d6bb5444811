"""Scorers: calibration on pyiqa's LIVE images; random-weight models via the real loading path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from curation.scoring.scorers import create_scorer, list_scorers
from curation.scoring.scorers import random_weights as rw
from curation.scoring.scorers.base import InputPolicy
from curation.scoring.scorers.inputs import load_for_policy
from curation.scoring.scorers.precision import cpu_has_native_bf16
from curation.scoring.scorers.qalign import levels_to_score
from hfaid_core.errors import HfaidError

# pyiqa's published reference values (ResultsCalibra/results_official.csv) for the five LIVE
# images in its wheel, and pyiqa's own tolerances (tests/test_metric_general.py TOL_DICT).
CALIBRATION = {
    "niqe": ([15.7536, 3.6549, 3.2355, 3.1840, 8.6352], 1e-2, 6e-2),
    "brisque": ([94.6421, -0.1076, 0.9929, 5.3583, 72.2617], 1e-2, 8e-2),
}


LEARNED = ["musiq", "maniqa", "clipiqa", "clipiqa+", "qalign_quality", "qalign_aesthetic"]


def calibration_images() -> list[Path]:
    site = Path(importlib.util.find_spec("pyiqa").submodule_search_locations[0]).parent
    images = sorted((site / "ResultsCalibra" / "dist_dir").glob("*.bmp"))
    assert [p.name for p in images] == ["I03.bmp", "I04.bmp", "I06.bmp", "I08.bmp", "I19.bmp"]
    return images


@pytest.mark.parametrize("metric", ["niqe", "brisque"])
def test_classical_metrics_reproduce_published_calibration_values(metric):
    scorer = create_scorer(metric, device="cpu")
    batch = torch.stack(
        [load_for_policy(str(p), scorer.input_policy) for p in calibration_images()]
    )
    values = torch.tensor(scorer.score(batch), dtype=torch.float64)
    expected, atol, rtol = CALIBRATION[metric]
    assert torch.allclose(
        values, torch.tensor(expected, dtype=torch.float64), atol=atol, rtol=rtol
    ), values
    # batched == per image (two of them: enough to catch cross-talk between batch rows)
    for i in (0, 4):
        assert scorer.score(batch[i : i + 1])[0] == pytest.approx(values[i].item(), rel=1e-4)


def test_qalign_levels_to_score_is_exact_on_fixed_logits():
    probs = torch.tensor(
        [[0.5, 0.25, 0.125, 0.0625, 0.0625], [0.2] * 5, [0, 0, 0, 0, 1.0]], dtype=torch.float64
    )
    logits = torch.log(probs.clamp_min(1e-300))
    scores = levels_to_score(logits)
    # 5*.5 + 4*.25 + 3*.125 + 2*.0625 + 1*.0625 = 4.0625 ; uniform -> 3 ; all "bad" -> 1
    assert scores.tolist() == pytest.approx([4.0625, 3.0, 1.0], abs=1e-12)
    # softmax is shift-invariant, and half-precision logits are promoted before the softmax
    assert levels_to_score(logits[:2] + 7.0).tolist() == pytest.approx([4.0625, 3.0], abs=1e-12)
    assert levels_to_score(torch.zeros(2, 5, dtype=torch.float16)).tolist() == pytest.approx(
        [3.0, 3.0], abs=1e-12
    )


def test_every_scorer_declares_its_facts_as_data():
    names = {s.name for s in list_scorers()}
    assert {
        "niqe",
        "brisque",
        "maniqa",
        "clipiqa",
        "clipiqa+",
        "musiq",
        "qalign_quality",
        "qalign_aesthetic",
    } <= names
    for spec in list_scorers():
        assert spec.score_range[0] < spec.score_range[1]
        assert spec.input_policy.mode in ("full", "pad_square", "resize")
        assert spec.weights is not None or spec.packaged_files


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """Random-weight checkpoints written in each model's real file layout."""
    folder = tmp_path_factory.mktemp("weights")
    rw.write_musiq(folder, rw.TINY_ARCH["musiq"])
    rw.write_maniqa(folder, rw.TINY_ARCH["maniqa"])
    rw.write_clipiqa(folder)
    rw.write_clipiqa(folder, plus=True)
    rw.write_qalign(folder)
    return folder


def tiny_scorer(metric: str, weights: Path, **kwargs):
    """A learned metric on the tiny random checkpoints of the `weights` fixture."""
    options = {"arch": rw.TINY_ARCH[metric]} if metric in rw.TINY_ARCH else {}
    return create_scorer(metric, weights_dir=weights, **kwargs, **options)


def random_batch(scorer, seed: int) -> torch.Tensor:
    """3 random images at a size the metric's input policy takes as is."""
    size = 448 if scorer.input_policy.mode == "pad_square" else 232
    torch.manual_seed(seed)
    return torch.rand(3, 3, size, size)


@pytest.mark.parametrize("metric", LEARNED)
def test_learned_scorers_load_saved_random_weights_and_batch_like_single_images(metric, weights):
    scorer = tiny_scorer(metric, weights, device="cpu")
    batch = random_batch(scorer, seed=1)
    batched = scorer.score(batch)
    single = [scorer.score(batch[i : i + 1])[0] for i in range(3)]
    assert batched == pytest.approx(single, rel=1e-4, abs=1e-5)
    low, high = scorer.spec.score_range
    if metric.startswith(("qalign", "clipiqa")):  # bounded by construction
        assert all(low <= v <= high for v in batched)
    # The version names the library and the weights file content.
    assert scorer.version.startswith("pyiqa-") and len(scorer.version.split("+")[1]) == 12


@pytest.mark.parametrize("metric", ["clipiqa", "clipiqa+"])
def test_clipiqa_encodes_its_prompts_once_with_the_same_scores(metric, weights):
    """pyiqa encodes the fixed prompts on every batch; the scorer does it once, exactly."""
    scorer = tiny_scorer(metric, weights, device="cpu")
    text_runs = []
    clip = scorer.built.module.clip_model[0]
    clip.transformer.register_forward_hook(lambda *_: text_runs.append(1))
    batches = [random_batch(scorer, seed) for seed in (1, 2, 3)]
    scores = [scorer.score(b) for b in batches]
    assert len(text_runs) == 1
    # Each batch on a scorer of its own, which encodes the prompts for it, gives the same.
    assert scores == [tiny_scorer(metric, weights, device="cpu").score(b) for b in batches]


def test_weights_change_changes_version(weights, tmp_path):
    other = tmp_path / "w2"
    rw.write_musiq(other, rw.TINY_ARCH["musiq"], seed=5)
    a = create_scorer("musiq", weights_dir=weights, arch=rw.TINY_ARCH["musiq"])
    b = create_scorer("musiq", weights_dir=other, arch=rw.TINY_ARCH["musiq"])
    assert a.version != b.version
    assert a.score(torch.full((1, 3, 64, 64), 0.5)) != b.score(torch.full((1, 3, 64, 64), 0.5))


def test_missing_weights_name_the_file_and_the_fetch_command(tmp_path):
    with pytest.raises(HfaidError) as info:
        create_scorer("maniqa", weights_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "maniqa" / "ckpt_koniq10k.pt") in message
    assert "hfaid weights fetch maniqa" in message


def test_float16_is_refused_on_cpu():
    with pytest.raises(HfaidError, match="bfloat16 only"):
        create_scorer("musiq", device="cpu", dtype="float16")


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    zen4 = tmp_path / "zen4"
    zen4.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    skylake = tmp_path / "skylake"
    skylake.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw\n")
    graviton3 = tmp_path / "graviton3"
    graviton3.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert cpu_has_native_bf16(zen4) and cpu_has_native_bf16(graviton3)
    assert not cpu_has_native_bf16(skylake)
    assert not cpu_has_native_bf16(tmp_path / "missing")


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no bf16 arithmetic")
@pytest.mark.parametrize("metric", LEARNED)
def test_bfloat16_on_cpu_follows_float32_at_float32_resolution(metric, weights):
    """The same code path as half precision on a GPU."""
    check_bfloat16_scores(metric, weights, "cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("metric", LEARNED)
def test_bfloat16_on_gpu_follows_float32_at_float32_resolution(metric, weights):
    check_bfloat16_scores(metric, weights, "cuda")


def check_bfloat16_scores(metric: str, weights: Path, device: str) -> None:
    """bf16 scores batch like single images, stay near float32 and keep float32 heads."""
    full = tiny_scorer(metric, weights, device=device, dtype="float32")
    half = tiny_scorer(metric, weights, device=device, dtype="bf16")
    assert half.dtype == torch.bfloat16
    batch = random_batch(half, seed=4)
    scores = half.score(batch)
    assert scores == pytest.approx([half.score(batch[i : i + 1])[0] for i in range(3)], rel=1e-3)
    assert scores == pytest.approx(full.score(batch), rel=5e-2, abs=1e-2)
    # A bf16 head would round every score to 8 significant bits (Q-Align's float64 softmax
    # hides that, so its head is checked directly).
    if metric.startswith("qalign"):
        from curation.scoring.scorers.qalign import load_mplug_owl2

        head = load_mplug_owl2(weights / "qalign", half.device, torch.bfloat16).lm_head
        seen = []
        hook = head.register_forward_hook(lambda _m, _a, out: seen.append(out))
        half.score(batch[:2])
        hook.remove()
        assert seen[0].dtype == torch.float32 and seen[0].shape[:2] == (2, 1)
    else:
        assert any(float(torch.tensor(v).bfloat16()) != v for v in scores)


def test_niqe_fast_gaussian_filter_matches_pyiqa_calculate_niqe():
    from pyiqa.archs.niqe_arch import calculate_niqe

    from curation.scoring.scorers.classical import niqe_params

    scorer = create_scorer("niqe", device="cpu")
    mu, cov = niqe_params()
    torch.manual_seed(2)
    images = [load_for_policy(str(p), scorer.input_policy) for p in calibration_images()[:2]]
    images.append((torch.rand(3, 211, 333) * 255).to(torch.uint8))  # partial 96px blocks
    for image in images:
        x = image[None].float() / 255
        ours = scorer.score(image[None])[0]
        # float64 sums in another order: equal to ~1e-13, far below any meaningful digit
        assert ours == pytest.approx(calculate_niqe(x, 0, True, "yiq", mu, cov).item(), rel=1e-9)


def test_niqe_block_features_equal_pyiqas_bit_for_bit():
    """The cached grid and the nearest-point search give pyiqa's `compute_feature` exactly, on
    real-photo blocks at both NIQE scales and on blocks that make pyiqa divide 0 by 0."""
    import torch.nn.functional as F
    from pyiqa.archs.niqe_arch import compute_feature
    from pyiqa.matlab_utils import blockproc

    from curation.scoring.scorers.nss import niqe_block_features, normalize_with_gauss

    image = load_for_policy(str(calibration_images()[0]), InputPolicy(mode="full"))
    y = image[None, :1].to(torch.float64)
    for side in (96, 48):
        normalized = normalize_with_gauss(y[..., : y.shape[-2] // side * side, :], "replicate")
        ours = blockproc(normalized, [side, side], fun=niqe_block_features)
        assert torch.equal(ours, blockproc(normalized, [side, side], fun=compute_feature))
        y = F.avg_pool2d(y, 2)
    odd = torch.stack([torch.zeros(1, 48, 48), torch.ones(1, 48, 48), -torch.ones(1, 48, 48)])
    odd = odd.to(torch.float64)
    torch.testing.assert_close(niqe_block_features(odd), compute_feature(odd), rtol=0, atol=0,
                               equal_nan=True)  # fmt: skip


def test_matlab_resize_equals_pyiqas_bit_for_bit():
    """Even (strided views) and uneven (gathered) output steps, down and up, float32 and
    float64 input, several channels: the same values as pyiqa's unfold-based imresize."""
    from pyiqa.matlab_utils import imresize as pyiqa_imresize

    from curation.scoring.scorers.matlab_resize import imresize

    torch.manual_seed(1)
    for shape in [(1, 1, 768, 1056), (2, 1, 97, 131), (1, 3, 64, 48), (1, 1, 33, 29)]:
        for dtype in (torch.float64, torch.float32):
            x = torch.rand(shape, dtype=dtype) * 255
            for scale in (0.5, 0.25, 0.3, 0.75, 2.0):
                expected = pyiqa_imresize(x, scale=scale, antialiasing=True)
                got = imresize(x, scale)
                assert got.dtype == expected.dtype and torch.equal(got, expected), (shape, scale)


def test_brisque_equals_pyiqas_bit_for_bit():
    from pyiqa.archs.brisque_arch import brisque

    from curation.scoring.scorers.classical import brisque_model, brisque_score

    model = brisque_model()
    torch.manual_seed(3)
    images = [load_for_policy(str(p), InputPolicy(mode="full")) for p in calibration_images()[:3]]
    images.append((torch.rand(3, 211, 333) * 255).to(torch.uint8))
    for image in images:
        x = image[None].float() / 255
        expected = brisque(x, 7, 7 / 6, True, model["sv_coef"], model["sv"], model["gamma"],
                           model["rho"], 1, "original")  # fmt: skip
        assert torch.equal(brisque_score(x, model), expected)


def test_nearest_grid_point_search_equals_a_full_argmin():
    from curation.scoring.scorers.nss import aggd_grid, nearest_on_grid

    _, r_gam, increasing = aggd_grid(torch.float64, torch.device("cpu"))
    assert increasing
    torch.manual_seed(0)
    midpoints = (r_gam[:-1] + r_gam[1:]) / 2
    x = torch.cat([torch.rand(500, dtype=torch.float64) * 0.8, r_gam[::97], midpoints[::89],
                   torch.tensor([-1.0, 0.0, 2.0, float("nan"), float("inf")])])  # fmt: skip
    x = x[:, None]
    full = nearest_on_grid(r_gam, x, increasing=False)
    assert torch.equal(nearest_on_grid(r_gam, x, increasing=True), full)


def test_maniqa_skips_the_vit_blocks_it_never_reads(tmp_path):
    from pyiqa.archs.maniqa_arch import MANIQA

    from curation.scoring.scorers.compat import timm_without_download
    from curation.scoring.scorers.pyiqa_models import MANIQA_FILE, load_checkpoint

    arch = {**rw.TINY_ARCH["maniqa"]}
    arch["backbone"] = {**arch["backbone"], "depth": 12}  # ViT-B/8's real depth
    rw.write_maniqa(tmp_path, arch)
    scorer = create_scorer("maniqa", device="cpu", weights_dir=tmp_path, arch=arch)
    assert len(scorer.built.module.vit.blocks) == 10
    backbone = arch.pop("backbone")
    with timm_without_download(**backbone):
        reference = MANIQA(train_dataset="koniq", scale=0.8, pretrained=False, **arch)
    load_checkpoint(reference, tmp_path / "maniqa" / MANIQA_FILE)
    torch.manual_seed(3)
    batch = torch.rand(2, 3, 240, 256)
    with torch.inference_mode():
        expected = reference.eval()(batch).reshape(-1).tolist()
    assert scorer.score(batch) == expected


def test_batch_sizes_are_declared_per_device():
    from curation.scoring.scorers import get_scorer_spec

    for name in ("niqe", "brisque", "musiq", "maniqa", "clipiqa", "clipiqa+"):  # fastest on CPU
        assert get_scorer_spec(name).batch_size("cpu") == 1
    for spec in list_scorers():
        assert spec.batch_size("cuda") == spec.default_batch_size


@pytest.mark.parametrize(
    ("metric", "small_hw", "large_hw"),
    [("musiq", (96, 128), (160, 112)), ("maniqa", (224, 256), (300, 240))],
)
def test_mixed_size_metrics_split_like_pyiqa_and_join_sizes(metric, small_hw, large_hw, weights):
    """MUSIQ's and MANIQA's forwards, split into pyiqa's input step (`prepare`: tokens, crops)
    and the model, give pyiqa's own forward; the inputs of images of two sizes, joined into one
    batch (MUSIQ's padded), give each image's score."""
    scorer = tiny_scorer(metric, weights, device="cpu")
    pyiqa_model = scorer.built.module  # pyiqa's class with the saved weights, eval mode
    torch.manual_seed(2)
    small, large = torch.rand(2, 3, *small_hw), torch.rand(1, 3, *large_hw)
    with torch.inference_mode():
        expected = [*pyiqa_model(small).reshape(-1).tolist(), pyiqa_model(large).item()]
    assert scorer.score(small) == pytest.approx(expected[:2], rel=1e-5, abs=1e-6)
    parts = [scorer.prepare(small), scorer.prepare(large)]
    if metric == "musiq":
        assert parts[0].shape[1] < parts[1].shape[1]  # 12 vs 20 full-resolution patches
    joined = scorer.built.join(parts)
    assert scorer.read(scorer.launch(joined, prepared=True)) == pytest.approx(
        expected, rel=1e-4, abs=1e-5
    )
