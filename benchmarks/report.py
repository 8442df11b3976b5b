"""RESULTS.md and the RD-curve pictures from the JSON results of rd, intra, rate control, fuzz,
speed and complexity.

    python -m benchmarks.report [--results benchmarks/results] [--out benchmarks/RESULTS.md]

Pictures need matplotlib (`pip install -e '.[bench]'`); without it the tables are still written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from benchmarks.anchors import ANCHORS
from nvcodec.bdrate import bd_psnr, between_points
from nvcodec.metrics import PLANE_WEIGHTS
from nvcodec.outputs import write_file

HERE = Path(__file__).resolve().parent
CLIP_ORDER = ("foreman", "cockatoo", "cactus", "people")


def _fmt(value: float | None, digits: int = 1, suffix: str = "%") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.{digits}f}{suffix}"


def bd_table(clips: list[dict]) -> list[str]:
    anchors = [a for a in ANCHORS if any(a in c["anchors"] for c in clips)]
    head = "| clip | frames | " + " | ".join(f"vs {a} (pchip / cubic / BD-PSNR)" for a in anchors) + " |"
    lines = [head, "| --- | ---: | " + " | ".join("---:" for _ in anchors) + " |"]
    sums: dict[str, list[float]] = {a: [] for a in anchors}
    for c in clips:
        cells = []
        for a in anchors:
            if a not in c["anchors"]:
                cells.append("-")
                continue
            ref, test = c["anchors"][a], c["nvcodec"]
            p, k = between_points(ref, test), between_points(ref, test, method="cubic")
            if p is not None:
                sums[a].append(p)
            d = between_points(ref, test, bd_psnr)
            cells.append(f"{_fmt(p)} / {_fmt(k)} / {_fmt(d, 2, ' dB')}")
        lines.append(
            f"| {c['clip']} ({c['width']}x{c['height']}) | {c['frames']} | " + " | ".join(cells) + " |"
        )
    means = [_fmt(sum(v) / len(v)) if v else "n/a" for v in sums.values()]
    lines.append("| **average** | | " + " | ".join(f"**{m}**" for m in means) + " |")
    return lines


def _frames_apart(points: list[dict]) -> tuple[list[dict], list[dict]]:
    """Each point's intra frame (its bits and PSNR-YUV) and its P frames (their bits, their mean
    PSNR-YUV), from the per-frame figures of a low-delay run with one intra frame."""
    intra = [{"bits": p["frame_bits"][0], "psnr_yuv": p["frame_psnr_yuv"][0]} for p in points]
    inter = [
        {
            "bits": sum(p["frame_bits"][1:]),
            "psnr_yuv": sum(p["frame_psnr_yuv"][1:]) / (len(p["frame_psnr_yuv"]) - 1),
        }
        for p in points
    ]
    return intra, inter


def _intra_share(point: dict) -> str:
    """The intra frame's share of a point's bits."""
    return f"{100 * point['frame_bits'][0] / sum(point['frame_bits']):.1f}%"


def split_table(clips: list[dict], anchor: str = "x264") -> list[str]:
    """BD-rate of nvcodec's intra frame against the anchor's, and of the P frames against its P
    frames, with the intra frame's share of each codec's bits at the anchor's middle qp: where a
    clip's gap comes from."""
    lines = [f"| clip | intra frame vs {anchor}'s | P frames vs {anchor}'s | intra share of the bits, nvcodec / {anchor} |",
             "| --- | ---: | ---: | ---: |"]  # fmt: skip
    for c in clips:
        ref, test = c["anchors"].get(anchor), c["nvcodec"]
        if not ref or any(len(p.get("frame_bits", [])) < 2 for p in ref + test):
            continue
        (ref_i, ref_p), (test_i, test_p) = _frames_apart(ref), _frames_apart(test)
        middle = ref[len(ref) // 2]
        ours = next((p for p in test if p["qp"] == middle["qp"]), None)
        share = "-" if ours is None else f"{_intra_share(ours)} / {_intra_share(middle)} (qp {middle['qp']})"
        lines.append(f"| {c['clip']} | {_fmt(between_points(ref_i, test_i))} | "
                     f"{_fmt(between_points(ref_p, test_p))} | {share} |")  # fmt: skip
    return lines


def untrained_table(clips: list[dict]) -> list[str]:
    """The released model against its untrained start: the same streams shown without the
    out-of-loop enhancement, its one gradient-trained part (what `--enhance off` shows, at the same
    size): BD-rate over x264's qps and the PSNR-YUV the enhancement adds at each qp. Empty when no
    clip recorded the unenhanced pictures."""
    rows = []
    for c in clips:
        points = [p for p in c["nvcodec"] if "frame_psnr_yuv_unenhanced" in p]
        if not points:
            continue
        plain = [{**p, "psnr_yuv": sum(t := p["frame_psnr_yuv_unenhanced"]) / len(t)} for p in points]
        span = c["settings"].get("x264", {}).get("qps", [])
        inner = [i for i, p in enumerate(points) if span and min(span) <= p["qp"] <= max(span)]
        bd = between_points([plain[i] for i in inner], [points[i] for i in inner])
        added = ", ".join(f"{p['qp']}: {p['psnr_yuv'] - q['psnr_yuv']:+.3f}" for p, q in zip(points, plain))
        rows.append(f"| {c['clip']} | {_fmt(bd, 2)} | {added} dB |")
    return (
        ["| clip | BD-rate over x264's qps | PSNR-YUV added at each qp |", "| --- | ---: | --- |", *rows]
        if rows
        else []
    )


WINDOW = 16  # frames in each mean of the drift column


def _drift(point: dict) -> str:
    """Mean PSNR-YUV of the first 16 frames, of frames 16-31 and of the last 16 (the first and the
    last alone below 48 frames). A fall between the first two figures is the intra frame's quality
    leaving its successors; a fall between the last two goes on over the sequence."""
    trace = point.get("frame_psnr_yuv", [])
    if len(trace) < 2 * WINDOW:
        return "-"
    windows = [trace[:WINDOW]] + ([trace[WINDOW : 2 * WINDOW]] if len(trace) >= 3 * WINDOW else [])
    return " / ".join(f"{sum(w) / WINDOW:.2f}" for w in windows + [trace[-WINDOW:]])


def _planes_drift(point: dict) -> str:
    """The first 16 frames' mean PSNR minus the last 16's in PSNR-YUV, luma and chroma (the mean of
    U and V, from the YUV and Y traces and the 6:1:1 weights): which planes lose quality over time."""
    yuv, y = point.get("frame_psnr_yuv", []), point.get("frame_psnr_y", [])
    if len(yuv) < 2 * WINDOW or len(y) != len(yuv):
        return "-"
    wy, wu, wv = PLANE_WEIGHTS
    chroma = [((wy + wu + wv) * a - wy * b) / (wu + wv) for a, b in zip(yuv, y)]
    drop = [(sum(t[:WINDOW]) - sum(t[-WINDOW:])) / WINDOW for t in (yuv, y, chroma)]
    return " / ".join(f"{d:+.2f}" for d in drop)


def points_table(clip: dict) -> list[str]:
    lines = [f"**{clip['clip']}** ({clip['width']}x{clip['height']}, {clip['frames']} frames, {clip['fps']} fps)", "",
             "| codec | qp | kbit/s | bpp | PSNR-Y | PSNR-YUV | frames 0-15 / 16-31 / last 16 "
             "| drift YUV / Y / UV | encode s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    rows = [("nvcodec", p) for p in clip["nvcodec"]]
    rows += [(a, p) for a, pts in clip["anchors"].items() for p in pts]
    for name, p in rows:
        lines.append(f"| {name} | {p['qp']} | {p['kbps']:.1f} | {p['bpp']:.4f} | {p['psnr_y']:.2f} | "
                     f"{p['psnr_yuv']:.2f} | {_drift(p)} | {_planes_drift(p)} | {p['seconds']:.1f} |")  # fmt: skip
    return lines


def intra_table(kodak: dict) -> list[str]:
    codecs = kodak["codecs"]
    lines = ["| codec | BD-rate vs JPEG (pchip) | points (bpp, PSNR-YUV) |", "| --- | ---: | --- |"]
    for name, rows in codecs.items():
        bd = between_points(codecs["jpeg"], rows, rate="bpp")
        pts = ", ".join(f"({r['bpp']:.3f}, {r['psnr_yuv']:.2f})" for r in rows)
        lines.append(f"| {name} | {_fmt(bd) if name != 'jpeg' else 'anchor'} | {pts} |")
    return lines


def speed_table(speed: dict) -> list[str]:
    lines = [f"Machine: {speed['machine']}, {speed['device']}, {speed['precision']}, "
             f"model `{speed['model']}`.", "",
             "| size | encode fps | decode fps | encode: model / entropy | decode: model / entropy | I/O ms/frame | peak RSS MiB |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in speed["sizes"]:
        e, d = r["encode_share"], r["decode_share"]
        lines.append(f"| {r['size']} | {r['encode_fps']:.2f} | {r['decode_fps']:.2f} | "
                     f"{100 * e['model']:.0f}% / {100 * e['entropy']:.0f}% | {100 * d['model']:.0f}% / {100 * d['entropy']:.0f}% | "
                     f"{r['io_ms_per_frame']:.1f} | {r['peak_rss_mib']:.0f} |")  # fmt: skip
    e = speed["entropy"]
    lines += ["", f"Entropy coder alone: {e['encode_symbols_per_s'] / 1e6:.1f} M symbols/s encoding, "
              f"{e['decode_symbols_per_s'] / 1e6:.1f} M symbols/s decoding."]  # fmt: skip
    return lines


def plot_clip(clip: dict, out: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (rd, trace) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, pts in [("nvcodec", clip["nvcodec"]), *clip["anchors"].items()]:
        pts = sorted(pts, key=lambda p: p["kbps"])
        rd.plot([p["kbps"] for p in pts], [p["psnr_yuv"] for p in pts], "o-", label=name)
    rd.set_xscale("log")
    rd.set(xlabel="kbit/s", ylabel="PSNR-YUV (dB)", title=f"{clip['clip']}: rate-distortion")
    rd.grid(True, which="both", alpha=0.3)
    rd.legend()
    mid = clip["nvcodec"][len(clip["nvcodec"]) // 2]
    trace.plot(mid["frame_psnr_yuv"], label=f"nvcodec qp {mid['qp']}: PSNR-YUV")
    trace.set(xlabel="frame", ylabel="dB", title="per frame (nvcodec)")
    bits = trace.twinx()
    bits.bar(range(len(mid["frame_bits"])), [b / 1000 for b in mid["frame_bits"]], alpha=0.3, color="gray")
    bits.set_ylabel("kbit")
    bits.set_yscale("log")
    trace.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


def rate_control_table(runs: list[dict]) -> list[str]:
    """One row per clip, controller and target: where it landed and how steady its qp was."""
    lines = ["| clip | controller | target kbit/s | achieved | error | PSNR-YUV | base qp range | mean base-qp change "
             "| BD-rate vs fixed qp |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for clip in runs:
        for controller, points in clip["controlled"].items():
            bd = _fmt(clip["bd_rate_vs_fixed"][controller], 2)
            for r in points:
                error = 100 * (r["kbps"] / r["target_kbps"] - 1)
                lines.append(f"| {clip['clip']} | {controller} | {r['target_kbps']:g} | {r['kbps']:.1f} | {error:+.2f}% "
                             f"| {r['psnr_yuv']:.2f} | {r['qp_range'][0]}-{r['qp_range'][1]} "
                             f"| {r['mean_qp_change']:.2f} | {bd} |")  # fmt: skip
    return lines


def fuzz_section(fuzz: dict) -> list[str]:
    """The long fuzz run: how its cases ended."""
    counts = fuzz["counts"]
    ok = {
        "decoded": "decoded (exit 0)",
        "refused": "refused cleanly, no output",
        "prefix": "refused, the frames before the damage kept",
    }
    lines = [f"`python -m benchmarks.fuzz --cases {fuzz['cases']} --seed {fuzz['seed']}` ({fuzz['seconds']:.0f} s): "
             "mutated streams (bit flips anywhere and in the segment index, truncation, insertions, deletions, hostile "
             "header and record fields with their CRCs recomputed, substream bytes changed behind a recomputed "
             "record CRC), each decoded by nvdec in a child forked from one pre-imported process.", "",
             "| outcome | cases |", "| --- | ---: |"]  # fmt: skip
    lines += [f"| {label} | {counts.get(kind, 0)} |" for kind, label in ok.items()]
    lines += [f"| mutation left the stream unchanged (not run) | {counts.get('unchanged', 0)} |",
              f"| **failures** (traceback, hang over {fuzz['limits']['seconds']:.0f} s, above "
              f"{fuzz['limits']['rss_mib'] / 1024:.0f} GiB, partial file, wrong prefix, undetected change) | "
              f"**{fuzz['failures']}** |", "",
              f"Slowest case {fuzz['slowest_case_s']:.2f} s; largest child {fuzz['peak_rss_mib']:.0f} MiB resident "
              "(most of it the parent's pre-imported libraries, shared).", ""]  # fmt: skip
    return lines


def segments_section(seg: dict) -> list[str]:
    """Segment-parallel speed and the BD-rate cost of segment lengths."""
    speed = seg["speed"]
    lines = [f"`python -m benchmarks.segments`. Speed: {speed['frames']} frames of {speed['clip']} in "
             f"{speed['segment_seconds']:g} s segments at qp {speed['qp']}, one `nvenc` job each way, wall time "
             "including the workers' start-up.", "",
             "| run | fps | speed-up | bitstream identical to serial |", "| --- | ---: | ---: | --- |"]  # fmt: skip
    lines += [f"| {label} | {r['fps']:.2f} | x{r['speed_up']:.2f} | {'yes' if r['identical'] else '**no**'} |"
              for label, r in speed["runs"].items()]  # fmt: skip
    for c in seg["cost"]:
        lengths = [k for k in c["curves"] if k != "one"]
        lines += ["", f"Cost on {c['clip']} ({c['frames']} frames, qp {', '.join(map(str, c['qps']))}): BD-rate of "
                  "segments of each length against one segment (sizes count the index).", "",
                  "| segment | " + " | ".join(lengths) + " |", "| --- |" + " ---: |" * len(lengths),
                  "| BD-rate | " + " | ".join(_fmt(c["bd_rate_vs_one"][k], 1) for k in lengths) + " |"]  # fmt: skip
    return lines + [""]


TRAINING_INPUTS = {"enhance": ("decoded", "shown"), "filter": ("prediction", "filtered")}


def training_section(log: list[dict], name: str, plot: Path, out: Path) -> list[str]:
    """A training run's evaluations: where it started and ended, its cost and its throughput."""
    last = log[-1]  # compared with the first evaluation on the same set (a changed codec starts a new one)
    first = next(r for r in log if r.get("eval_set") == last.get("eval_set"))
    chunks = [
        (b["mpixels_per_second"], b["train_seconds"] - a["train_seconds"]) for a, b in zip(log, log[1:])
    ]
    seconds = sum(dt for _, dt in chunks)
    rate = sum(r * dt for r, dt in chunks) / seconds if seconds else 0.0
    clip = last.get("eval_clip", "foreman_352x288_25fps.h264")
    stage = last.get("stage", "enhance")
    seen, refined = TRAINING_INPUTS[stage]
    lines = [f"Stage `{stage}` (`python -m nvcodec.train.refine --stage {stage}`, run folder `training/{name}`): "
             f"{last['step']} steps, {last['train_seconds'] / 3600:.2f} h of training on {last['device']}, "
             f"{rate:.2f} Mpixel/s of training patches (all chunks together). Evaluated at each checkpoint on "
             f"the first frames of {clip}, never trained on (PSNR-YUV: {last.get('measure', 'metrics.frame_psnr')}):",
             "", f"| qp | PSNR-YUV {seen} | {refined} at the start | {refined} now | gain | frames flagged | kbit |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for qp, now in last["eval"].items():
        start = first["eval"][qp]
        lines.append(f"| {qp} | {now['psnr_yuv']:.3f} | {start['psnr_yuv_refined']:.3f} | {now['psnr_yuv_refined']:.3f} | "
                     f"{now['psnr_yuv_refined'] - now['psnr_yuv']:+.3f} dB | {now['flagged']} | "
                     f"{sum(now['bits'].values()) / 1000:.1f} |")  # fmt: skip
    if plot.is_file():
        lines += ["", f"![{name} learning curves]({os.path.relpath(plot, out.resolve().parent)})"]
    return lines + [""]


def _bitstream(clip: dict) -> str | None:
    """The version of the clip's streams (None in runs made before it was recorded)."""
    return clip.get("nvcodec_settings", {}).get("bitstream")


def _at_bitstream(clip: dict) -> str:
    version = _bitstream(clip)
    return f" at bitstream {version}" if version else " at an unrecorded bitstream version"


def measured_apart(clips: list[dict]) -> str:
    """The clips measured with other weights, on another day or at another bitstream version than
    the first (a partial rerun with `benchmarks.rd --clips`), as a clause of the sentence that
    names the first's."""

    def measured(clip: dict) -> tuple[str, str, str | None]:
        env = clip["environment"]
        return env["weights"]["sha256"], env["date"], _bitstream(clip)

    first = measured(clips[0])
    apart = []
    for c in clips[1:]:
        weights, date, _ = here = measured(c)
        if here != first:
            apart.append(f"{c['clip']} with `{weights[:16]}...` on {date}{_at_bitstream(c)}")
    return f" ({', '.join(apart)})" if apart else ""


def render(results: Path, out: Path, training: Path | None = None) -> str:
    """RESULTS.md for the JSON in `results` and the training runs in `training`, with image links
    relative to `out`."""
    clips = [json.loads(p.read_text()) for p in results.glob("rd_*.json")]
    clips.sort(key=lambda c: CLIP_ORDER.index(c["clip"]))
    lines = ["# nvcodec benchmark results", "",
             "Generated by `make bench` (`python -m benchmarks.report`) from the JSON in `benchmarks/results/`.",
             "Do not edit by hand.", ""]  # fmt: skip
    if clips:
        env = clips[0]["environment"]
        lines += ["## Rate-distortion (low delay, one intra frame, YUV 4:2:0, PSNR-YUV 6:1:1)", "",
                  f"Weights: {env['weights']['config']}, SHA-256 `{env['weights']['sha256'][:16]}...` (measured as "
                  f"`{Path(env['weights']['path']).name}`; weights/manifest.json names the released file with its "
                  f"SHA-256). Measured on {env['date']}{_at_bitstream(clips[0])}, {env['machine']}{measured_apart(clips)}. "
                  "Rates are real bitstream sizes (nvcodec: the whole .nvc file; anchors: the coded packets). "
                  "The clips are H.264/MPEG-4 sources (second generation), fine for relative comparisons.", "",
                  "BD-rate of nvcodec against each anchor (negative: nvcodec needs fewer bits at equal PSNR-YUV) and "
                  "BD-PSNR (positive: nvcodec is better at equal rate); n/a where the curves do not overlap:", ""]  # fmt: skip
        lines += bd_table(clips) + [""]
        lines += [
            "The intra frame and the P frames apart (BD-rate pchip; P frames: their bits and their mean PSNR-YUV):",
            "",
        ]
        lines += split_table(clips) + [""]
        if untrained := untrained_table(clips):
            lines += ["The released model against its untrained start, the fitted classical codec: the same streams "
                      "shown without the enhancement, the one gradient-trained part (negative: the released model "
                      "needs fewer bits at equal PSNR-YUV):", ""] + untrained + [""]  # fmt: skip
        for c in clips:
            plot = results / f"rd_{c['clip']}.png"
            if plot_clip(c, plot):
                lines += [f"![{c['clip']}]({os.path.relpath(plot, out.resolve().parent)})", ""]
        lines += ["### Anchor settings", ""]
        for name, s in clips[0]["settings"].items():
            version = (
                clips[0]["anchors"][name][0].get("encoder_version") or "version not written in the stream"
            )
            lines.append(f"- **{name}** ({version}), QP {', '.join(map(str, s['qps']))}: `{s['command']}`")
        ours = clips[0].get("nvcodec_settings")  # absent from results measured before it was recorded
        if ours:
            tools = [(key, mode) for key, mode in ours.items() if key not in ("qps", "bitstream")]
            command = "nvenc " + " ".join(f"--{key.replace('_', '-')} {mode}" for key, mode in tools)
            lines.append(f"- **nvcodec**, qp {', '.join(map(str, ours['qps']))}: `{command}`")
        versions = env["versions"]
        lines += ["", "Libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
        lines += ["### All points", ""]
        for c in clips:
            lines += points_table(c) + [""]
    rate_runs = [json.loads(p.read_text()) for p in sorted(results.glob("ratecontrol_*.json"))]
    if rate_runs:
        first = rate_runs[0]
        targets, fixed = ", ".join(map(str, first["target_qps"])), first["fixed_qps"]
        lines += [f"## Rate control (`--bitrate`, {first['frames']} frames, targets at the rates of fixed qp {targets})", "",
                  "Generated by `python -m benchmarks.ratecontrol`. Error: achieved against target, the whole file "
                  "counted. Base qp: frame qp less its scheduled offset (P frames). BD-rate: the rate-controlled "
                  f"encodes against fixed-qp encodes of the same frames (qp {fixed[0]}-{fixed[-1]}).", ""]  # fmt: skip
        lines += rate_control_table(rate_runs) + [""]
    kodak = results / "kodak.json"
    if kodak.is_file():
        lines += (
            ["## Still images (Kodak, 24 images, YUV 4:2:0)", ""]
            + intra_table(json.loads(kodak.read_text()))
            + [""]
        )
    for log_path in sorted(training.glob("*/log.jsonl")) if training is not None else []:
        name = log_path.parent.name
        log = [json.loads(line) for line in log_path.read_text().splitlines()]
        lines += [f"## Training: {name}", ""] + training_section(
            log, name, log_path.parent / "curves.svg", out
        )
    segments = results / "segments.json"
    if segments.is_file():
        lines += ["## Segments (seeking, parallel and cluster coding)", ""]
        lines += segments_section(json.loads(segments.read_text()))
    fuzz = results / "fuzz.json"
    if fuzz.is_file():
        lines += ["## Robustness (fuzzing nvdec)", ""] + fuzz_section(json.loads(fuzz.read_text()))
    speed = results / "speed.json"
    if speed.is_file():
        lines += ["## Speed and memory", ""] + speed_table(json.loads(speed.read_text())) + [""]
    complexity = results / "complexity.json"
    if complexity.is_file():
        lines += ["## Complexity (kMAC per pixel)", "", "| config | parameters | I encode | I decode | P encode | ME seed | P decode |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
        for name, r in json.loads(complexity.read_text()).items():
            lines.append(f"| {name} | {r['parameters']:,} | {r['intra_encode_kmac']:.1f} | {r['intra_decode_kmac']:.1f} | "
                         f"{r['inter_encode_kmac']:.1f} | {r['motion_seed_kmac']:.1f} | {r['inter_decode_kmac']:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--training", type=Path, default=HERE.parent / "training", help="training run folders"
    )
    args = parser.parse_args(argv)
    write_file(args.out, render(args.results, args.out, args.training))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
