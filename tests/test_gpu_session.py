"""The lent-GPU script and the shrunk tree it trains from: on the CPU at a tiny size, with only the packages the GPU
machine has (no PyAV, decord, librosa, soundfile, dlib: importing them fails here as there)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfer.data.features import face_tensor
from mmfer.data.images import read_image_rgb
from mmfer.labels import EMOTIONS

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("shrink_face_tree", ROOT / "tools" / "shrink_face_tree.py")
shrink_face_tree = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(shrink_face_tree)

MISSING_ON_THE_GPU_MACHINE = ("av", "decord", "librosa", "soundfile", "dlib", "face_recognition_models", "silero_vad")


@pytest.fixture(scope="module")
def crop_tree(tmp_path_factory):
    """7 classes x 10 colour 112-px crops, a bright block at a class-specific height on noise (learnable)."""
    import cv2

    root = tmp_path_factory.mktemp("crops")
    rng = np.random.default_rng(0)
    for k, e in enumerate(EMOTIONS):
        (root / "Train" / e).mkdir(parents=True)
        for i in range(10):
            img = rng.integers(0, 80, (112, 112, 3)).astype(np.uint8)
            img[10 + 10 * k : 40 + 10 * k, 20:60] = (230, 200, 170)
            cv2.imwrite(str(root / "Train" / e / f"{e}_{i}.png"), img)
    (root / "crops.csv").write_text("clip_id\n")  # not an image: not copied
    return root


def test_a_shrunk_image_gives_the_model_the_same_input(crop_tree, tmp_path):
    counts = shrink_face_tree.shrink_tree(crop_tree, tmp_path / "s", size=44, grayscale=True, check=True, progress=False)
    assert counts == {"images": 70, "written": 70, "kept": 0, "failed": 0}
    for name in ("Angry/Angry_0", "Surprise/Surprise_9"):
        big, small = read_image_rgb(crop_tree / "Train" / f"{name}.png"), read_image_rgb(tmp_path / "s" / "Train" / f"{name}.webp")
        assert small.shape == (44, 44, 3)
        np.testing.assert_array_equal(face_tensor(big, size=44, grayscale=True, equalize=True),
                                      face_tensor(small, size=44, grayscale=True, equalize=True))
    assert not (tmp_path / "s" / "crops.csv").exists() and (tmp_path / "s" / "shrink.json").is_file()
    png = shrink_face_tree.shrink_tree(crop_tree, tmp_path / "p", size=44, grayscale=True, fmt="png", progress=False)
    assert png["written"] == 70
    np.testing.assert_array_equal(read_image_rgb(tmp_path / "p" / "Train" / "Fear" / "Fear_3.png"),
                                  read_image_rgb(tmp_path / "s" / "Train" / "Fear" / "Fear_3.webp"))  # both lossless
    # resumable: a second run keeps what is there
    again = shrink_face_tree.shrink_tree(crop_tree, tmp_path / "s", size=44, grayscale=True, progress=False)
    assert again["kept"] == 70 and again["written"] == 0


def test_shrinking_refuses_what_would_mix_or_lose_images(crop_tree, tmp_path):
    import shutil

    from mmfer.errors import MmferError

    with pytest.raises(MmferError, match="outside"):
        shrink_face_tree.shrink_tree(crop_tree, crop_tree / "small", size=44, grayscale=True, progress=False)
    shrink_face_tree.shrink_tree(crop_tree, tmp_path / "s", size=44, grayscale=True, progress=False)
    with pytest.raises(MmferError, match=r"made with .*.size.: 44.*remove it or choose another --out"):
        shrink_face_tree.shrink_tree(crop_tree, tmp_path / "s", size=48, grayscale=True, progress=False)
    twin = tmp_path / "twin"
    shutil.copytree(crop_tree, twin)
    shutil.copy(twin / "Train" / "Sad" / "Sad_1.png", twin / "Train" / "Sad" / "Sad_1.jpg")
    with pytest.raises(MmferError, match=r"Sad_1.jpg and .*Sad_1.png would both be written as Sad_1.webp"):
        shrink_face_tree.shrink_tree(twin, tmp_path / "t", size=44, grayscale=True, progress=False)


def test_the_gpu_session_script_runs_where_only_torch_and_opencv_are(crop_tree, tmp_path):
    small = tmp_path / "tree44"
    shrink_face_tree.shrink_tree(crop_tree, small, size=44, grayscale=True, progress=False)
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Missing:\n"
        f"    names = {set(MISSING_ON_THE_GPU_MACHINE)!r}\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in self.names:\n"
        "            raise ImportError(f'{name}: not on the GPU machine')\n"
        "sys.meta_path.insert(0, _Missing())\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(block), "OUT": str(out), "DATA": str(small), "DEVICE": "cpu",
           "EPOCHS": "1", "PY": sys.executable, "BUDGET": "600"}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_session.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["machine.txt", "recipe.log", "recipe.pt", "recipe_log.csv", "recipe_scores.csv", "wide.log", "wide.pt"]
    assert len(files) <= 8  # what the device tool brings back
    log = (out / "recipe.log").read_text()
    assert "train exit 0" in log and "mean class accuracy:" in log
    assert len((out / "recipe_scores.csv").read_text().splitlines()) == 1 + 7  # the 10% held out, with a header
    from mmfer.engine.checkpoint import load_checkpoint, model_from_checkpoint

    for name, width in (("recipe", 32), ("wide", 64)):
        ckpt = load_checkpoint(out / f"{name}.pt")
        assert ckpt["model_kwargs"]["width"] == width
        assert all(v.dtype == torch.float16 for v in ckpt["state_dict"].values() if v.is_floating_point())
        with torch.no_grad():
            assert model_from_checkpoint(ckpt).eval()(torch.zeros(1, 1, 44, 44)).shape == (1, 7)


def test_the_gpu_session_script_says_a_missing_tree(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "DATA": str(tmp_path / "nothing"), "PY": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "tools" / "gpu_session.sh")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "shrink_face_tree.py" in proc.stderr
