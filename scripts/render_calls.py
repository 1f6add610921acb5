#!/usr/bin/env python3
"""Render scripted two-speaker calls (agent + customer) to audio with exact ground truth.

    python scripts/render_calls.py SCRIPTS_DIR OUT_DIR     # render every SCRIPTS_DIR/*.yaml
    python scripts/render_calls.py --check SCRIPTS_DIR     # only validate the scripts

For each script ``NAME.yaml`` it writes into OUT_DIR:

* ``NAME.<flac|wav|mp3|ogg>``: the call, in the format, channel layout and rate the script's
  ``output:`` block asks for (``{format: flac|wav|mp3|ogg, layout: mono|stereo,
  rate: 16000|8000}``).  Stereo is left = agent, right = customer; mono sums both.
  flac/wav are 16-bit PCM written with soundfile; mp3 (libmp3lame, ~32 kbit/s) and
  ogg/opus (libopus, ~24 kbit/s) are encoded with PyAV.
* ``NAME.truth.json``: ground truth in the schema of the shared dev-calls set (call_id,
  duration_s, speech_s, labels, talk_ratio, interruptions, overlaps, turns, ...).
* ``NAME.json``: the input sidecar (``agent_id``, ``team``, ``started_at``, ``company``,
  and ``agent_channel`` for stereo recordings).

How a call is made: each turn is synthesised with ``espeak-ng -v VOICE -p PITCH -s SPEED``,
resampled to 16 kHz and peak-normalised to -16 dBFS with ``sox -D`` (no dither), and trimmed
to its first/last sample within 40 dB of that peak.  Turns go on a 16 kHz timeline: a
lead-in, then each turn followed by ``pause_after`` plus a seeded jitter (or a per-turn
``pause_after`` override, used exactly), with an optional per-turn ``overlap: N`` (the turn
starts N s before the previous turn ends; overlapping speech is summed in mono).  Then the
tail.  Every step is deterministic, so re-rendering gives byte-identical files with the same
tool versions.

Times in the truth are seconds on that timeline, exact to the 16 kHz sample and rounded to
ms.  For lossy formats the encoder's priming delay is declared in the container (LAME/Xing
header for mp3, pre-skip for Ogg Opus) and removed by FFmpeg/PyAV on decode; the renderer
decodes every lossy file again, measures the remaining offset against the timeline by
cross-correlation, shifts the input to cancel it if it is above 1 ms, and records the
measurement under ``audio.codec_delay`` in the truth.

Needs: numpy, pyyaml, soundfile, av (PyAV) and the tools espeak-ng and sox
(Debian: ``apt-get install -y espeak-ng sox``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

SR = 16_000                     # timeline rate
PEAK_DBFS = -16.0               # per-turn peak level
TRIM_DB = 40.0                  # trim to first/last sample within this of the peak
DEFAULT_BITRATE = {"mp3": 32_000, "ogg": 24_000}
MAX_CODEC_OFFSET = 16           # samples (1 ms at 16 kHz) tolerated before compensating

# ---------------------------------------------------------------------------------------------
# Contract vocabulary (../shared/coaching-contract.md): call types, their checks, risks.
# ---------------------------------------------------------------------------------------------
CALL_TYPES = {
    "escalation": {
        "checks": ["issue_acknowledged", "acknowledged_before_solving", "root_cause_explained",
                   "action_plan_created", "timeline_committed", "follow_up_scheduled",
                   "satisfaction_confirmed", "executive_escalation_offered"],
        "expected": [0.30, 0.40],
    },
    "handoff": {
        "checks": ["issue_recap_given", "impact_assessed", "ownership_stated",
                   "specific_timeframe_given", "ticket_reference_provided", "issue_documented",
                   "warm_handoff", "expectations_set"],
        "expected": [0.40, 0.55],
    },
    "standard": {"checks": [], "expected": [0.40, 0.60]},
}
RISKS = ["resolution_timeline_vague", "no_follow_up_scheduled",
         "executive_escalation_not_offered", "concern_not_addressed",
         "no_escalation_timeframe", "customer_must_reexplain",
         "no_proactive_update_commitment", "ownership_unclear_after_handoff"]
# Risks that only make sense for some call types (labelling conventions of the dev-calls).
RISK_CALL_TYPES = {
    "executive_escalation_not_offered": {"escalation"},
    "no_escalation_timeframe": {"handoff"},
    "customer_must_reexplain": {"handoff"},
    "ownership_unclear_after_handoff": {"escalation", "handoff"},
    "resolution_timeline_vague": {"escalation", "handoff"},
    "no_follow_up_scheduled": {"escalation", "handoff"},
    "no_proactive_update_commitment": {"escalation", "handoff"},
    "concern_not_addressed": {"escalation", "handoff", "standard"},
}
SPEAKERS = ("agent", "customer")
FORMATS = {"flac", "wav", "mp3", "ogg"}
LAYOUTS = {"mono", "stereo"}
RATES = {16000, 8000}
LABEL_KEYS = {"call_type", "checks", "risks", "agent_interruptions",
              "customer_interruptions", "notes"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class ScriptError(ValueError):
    pass


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def validate(script: dict, name: str) -> list[str]:
    """Every problem of one script as a readable line (empty list when valid)."""
    errs: list[str] = []

    def err(msg: str) -> None:
        errs.append(f"{name}: {msg}")

    if not isinstance(script, dict):
        return [f"{name}: not a YAML mapping"]
    call_id = script.get("call_id")
    if not isinstance(call_id, str) or not NAME_RE.match(call_id):
        err(f"call_id {call_id!r} must be a lowercase file-safe name")
    elif call_id != name:
        err(f"call_id {call_id!r} differs from the file name {name!r}")
    for key in ("company", "industry"):
        if not isinstance(script.get(key), str) or not script.get(key):
            err(f"{key} missing")
    if not isinstance(script.get("seed"), int):
        err("seed must be an int")
    for key in ("lead_in", "tail", "pause_after", "pause_jitter"):
        v = script.get(key)
        if not isinstance(v, (int, float)) or v < 0:
            err(f"{key} must be a number >= 0")
    if isinstance(script.get("pause_after"), (int, float)) and \
            isinstance(script.get("pause_jitter"), (int, float)) and \
            script["pause_jitter"] > script["pause_after"]:
        err("pause_jitter larger than pause_after")

    voices = script.get("voices")
    if not isinstance(voices, dict) or set(voices) != set(SPEAKERS):
        err("voices must have exactly agent and customer")
    else:
        for who, v in voices.items():
            if not isinstance(v, dict) or not isinstance(v.get("voice"), str) \
                    or not isinstance(v.get("pitch"), int) or not isinstance(v.get("speed"), int):
                err(f"voices.{who} needs voice (str), pitch (int), speed (int)")
            elif not 0 <= v["pitch"] <= 99 or not 80 <= v["speed"] <= 450:
                err(f"voices.{who}: pitch 0-99, speed 80-450")
        a, c = voices["agent"], voices["customer"]
        if isinstance(a, dict) and isinstance(c, dict) and a.get("voice") == c.get("voice") \
                and a.get("pitch") == c.get("pitch"):
            err("agent and customer need different voices or pitches")

    out = script.get("output")
    if not isinstance(out, dict):
        err("output block missing ({format, layout, rate})")
    else:
        if out.get("format") not in FORMATS:
            err(f"output.format {out.get('format')!r} not in {sorted(FORMATS)}")
        if out.get("layout") not in LAYOUTS:
            err(f"output.layout {out.get('layout')!r} not in {sorted(LAYOUTS)}")
        if out.get("rate") not in RATES:
            err(f"output.rate {out.get('rate')!r} not in {sorted(RATES)}")
        if "bitrate" in out and (not isinstance(out["bitrate"], int) or out["bitrate"] < 6000):
            err("output.bitrate must be an int (bit/s)")
        extra = set(out) - {"format", "layout", "rate", "bitrate"}
        if extra:
            err(f"output: unknown keys {sorted(extra)}")

    meta = script.get("metadata")
    if not isinstance(meta, dict):
        err("metadata block missing ({agent_id, team, started_at})")
    else:
        for key in ("agent_id", "team", "started_at"):
            if not isinstance(meta.get(key), str) or not meta.get(key):
                err(f"metadata.{key} missing (quote started_at so YAML keeps it a string)")
        ts = meta.get("started_at")
        if isinstance(ts, str):
            try:
                if datetime.fromisoformat(ts).tzinfo is None:
                    err("metadata.started_at needs a timezone offset")
            except ValueError:
                err(f"metadata.started_at {ts!r} is not ISO-8601")

    turns = script.get("turns")
    overlaps = {"agent": 0, "customer": 0}
    if not isinstance(turns, list) or len(turns) < 2:
        err("turns must be a list of at least 2 turns")
        turns = []
    for i, t in enumerate(turns):
        if not isinstance(t, dict):
            err(f"turn {i}: not a mapping")
            continue
        if t.get("speaker") not in SPEAKERS:
            err(f"turn {i}: speaker {t.get('speaker')!r} not agent/customer")
        if not isinstance(t.get("text"), str) or not t["text"].strip():
            err(f"turn {i}: text missing")
        extra = set(t) - {"speaker", "text", "overlap", "pause_after"}
        if extra:
            err(f"turn {i}: unknown keys {sorted(extra)}")
        if "pause_after" in t and (not isinstance(t["pause_after"], (int, float))
                                   or t["pause_after"] < 0):
            err(f"turn {i}: pause_after must be a number >= 0")
        if "overlap" in t:
            ov = t["overlap"]
            if not isinstance(ov, (int, float)) or ov <= 0:
                err(f"turn {i}: overlap must be a number > 0")
            elif i == 0 or not isinstance(turns[i - 1], dict) \
                    or turns[i - 1].get("speaker") == t.get("speaker"):
                err(f"turn {i}: an overlap must follow a turn of the other speaker")
            elif t.get("speaker") in SPEAKERS:
                overlaps[t["speaker"]] += 1
    if turns and isinstance(turns[0], dict) and turns[0].get("speaker") != "agent":
        err("turn 0 must be the agent's greeting")

    errs.extend(f"{name}: {e}" for e in validate_labels(script.get("labels"), overlaps))
    return errs


def validate_labels(labels, overlaps: dict | None = None) -> list[str]:
    """Check a label block against the contract vocabulary and the labelling conventions."""
    errs: list[str] = []
    if not isinstance(labels, dict):
        return ["labels block missing"]
    missing, extra = LABEL_KEYS - set(labels), set(labels) - LABEL_KEYS
    if missing:
        errs.append(f"labels: missing {sorted(missing)}")
    if extra:
        errs.append(f"labels: unknown keys {sorted(extra)}")
    ct = labels.get("call_type")
    if ct not in CALL_TYPES:
        errs.append(f"labels.call_type {ct!r} is not a contract call type {sorted(CALL_TYPES)}")
        return errs
    checks = labels.get("checks")
    if not isinstance(checks, dict):
        errs.append("labels.checks must be a mapping ({} for standard)")
        checks = {}
    want = CALL_TYPES[ct]["checks"]
    for c in checks:
        if c not in want:
            where = [k for k, v in CALL_TYPES.items() if c in v["checks"]]
            errs.append(f"labels.checks: {c!r} is not a check of {ct}"
                        + (f" (it belongs to {where[0]})" if where else " nor of the contract"))
    for c in want:
        if c not in checks:
            errs.append(f"labels.checks: {c!r} missing (every check of {ct} is labelled)")
    for c, v in checks.items():
        if v not in (True, False, None):
            errs.append(f"labels.checks.{c}: {v!r} must be true, false or null")
    risks = labels.get("risks")
    if not isinstance(risks, list):
        errs.append("labels.risks must be a list")
        risks = []
    for r in risks:
        if r not in RISKS:
            errs.append(f"labels.risks: {r!r} is not a contract risk")
        elif ct not in RISK_CALL_TYPES[r]:
            errs.append(f"labels.risks: {r!r} does not apply to {ct} calls")
    if len(set(map(str, risks))) != len(risks):
        errs.append("labels.risks: duplicates")
    for key in ("agent_interruptions", "customer_interruptions"):
        v = labels.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            errs.append(f"labels.{key} must be an int >= 0")
        elif overlaps is not None and v != overlaps[key.split("_")[0]]:
            errs.append(f"labels.{key} = {v} but the script has "
                        f"{overlaps[key.split('_')[0]]} overlapping {key.split('_')[0]} turns")
    if not isinstance(labels.get("notes"), str) or not labels.get("notes", "").strip():
        errs.append("labels.notes must be a one-line string")
    # Consistency of checks and risks (conventions of the labelled dev set).
    if ct == "escalation":
        if checks.get("acknowledged_before_solving") is True and checks.get("issue_acknowledged") is not True:
            errs.append("acknowledged_before_solving true without issue_acknowledged")
        if checks.get("follow_up_scheduled") is True and "no_follow_up_scheduled" in risks:
            errs.append("follow_up_scheduled true contradicts risk no_follow_up_scheduled")
    if ct == "handoff":
        if (checks.get("specific_timeframe_given") is False) != ("no_escalation_timeframe" in risks):
            errs.append("no_escalation_timeframe must be listed exactly when specific_timeframe_given is false")
        # LABELING.md: the risk holds when neither was done, or when the agent told the
        # customer they would have to explain it again (possible after a warm transfer too)
        if checks.get("issue_documented") is False and checks.get("warm_handoff") is False \
                and "customer_must_reexplain" not in risks:
            errs.append("customer_must_reexplain must be listed when neither "
                        "issue_documented nor warm_handoff holds")
        if checks.get("ownership_stated") is True and "ownership_unclear_after_handoff" in risks:
            errs.append("ownership_stated true contradicts ownership_unclear_after_handoff")
    return errs


# ---------------------------------------------------------------------------------------------
# Synthesis and timeline
# ---------------------------------------------------------------------------------------------
def _run(cmd: list[str]) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}... failed ({p.returncode}): {p.stderr.strip()[:300]}")
    return p.stdout


def require_tools() -> None:
    missing = [t for t in ("espeak-ng", "sox") if shutil.which(t) is None]
    if missing:
        raise SystemExit(f"missing tools: {', '.join(missing)} "
                         f"(Debian/Ubuntu: apt-get install -y espeak-ng sox)")


def tool_versions() -> dict:
    import av
    import soundfile
    first = lambda s: s.strip().splitlines()[0] if s.strip() else "unknown"  # noqa: E731
    espeak = re.sub(r"\s+Data at:.*$", "", first(_run(["espeak-ng", "--version"])))
    sox = first(_run(["sox", "--version"])).replace("sox:", "").strip()
    return {"espeak-ng": espeak, "sox": sox, "numpy": np.__version__,
            "soundfile": soundfile.__version__, "libsndfile": soundfile.__libsndfile_version__,
            "av": av.__version__,
            "libavcodec": ".".join(map(str, av.library_versions["libavcodec"]))}


def synth_turn(text: str, voice: dict, work: Path, idx: int) -> np.ndarray:
    """One turn: espeak-ng -> sox -D (16 kHz, peak -16 dBFS) -> trim.  float32 at SR."""
    import soundfile as sf
    txt, raw, res = work / f"t{idx}.txt", work / f"t{idx}.raw.wav", work / f"t{idx}.16k.wav"
    txt.write_text(text, encoding="utf-8")
    _run(["espeak-ng", "-v", voice["voice"], "-p", str(voice["pitch"]), "-s", str(voice["speed"]),
          "-w", str(raw), "-f", str(txt)])
    _run(["sox", "-D", str(raw), "-e", "floating-point", "-b", "32", str(res),
          "rate", "-v", str(SR), "norm", str(PEAK_DBFS)])
    x, rate = sf.read(str(res), dtype="float32", always_2d=False)
    assert rate == SR and x.ndim == 1
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        raise RuntimeError(f"turn {idx}: espeak-ng produced silence")
    loud = np.flatnonzero(np.abs(x) >= peak * 10 ** (-TRIM_DB / 20))
    return np.ascontiguousarray(x[loud[0]:loud[-1] + 1])


def build_timeline(script: dict, clips: list[np.ndarray]):
    """Place the turns; returns (agent_track, customer_track, placed turns in samples)."""
    rng = np.random.default_rng(int(script["seed"]))
    jitter = float(script["pause_jitter"])
    pos = int(round(float(script["lead_in"]) * SR))
    placed = []
    for i, (t, clip) in enumerate(zip(script["turns"], clips)):
        j = float(rng.uniform(-jitter, jitter))          # drawn for every turn: stable sequence
        if "overlap" in t:
            prev = placed[-1]
            start = prev["end"] - int(round(float(t["overlap"]) * SR))
            if start <= prev["start"]:
                raise ScriptError(f"turn {i}: overlap {t['overlap']} s is longer than turn {i-1}")
            if start + len(clip) <= prev["end"]:
                raise ScriptError(f"turn {i}: overlapping turn ends inside turn {i-1}")
        else:
            start = pos
        end = start + len(clip)
        pause = float(t["pause_after"]) if "pause_after" in t else float(script["pause_after"]) + j
        pos = max(end, max((p["end"] for p in placed), default=0)) + int(round(pause * SR))
        placed.append({"i": i, "speaker": t["speaker"], "start": start, "end": end,
                       "text": t["text"], "overlap": t.get("overlap")})
    last = max(p["end"] for p in placed)
    total = last + int(round(float(script["tail"]) * SR))
    total += total % 2                                  # even: exact 8 kHz length
    tracks = {s: np.zeros(total, dtype=np.float32) for s in SPEAKERS}
    for p, clip in zip(placed, clips):
        tracks[p["speaker"]][p["start"]:p["end"]] += clip
    return tracks["agent"], tracks["customer"], placed


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------
def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def resample(x: np.ndarray, rate: int, work: Path) -> np.ndarray:
    """(channels, n) float32 at SR -> (channels, n * rate / SR) float32 via sox -D."""
    import soundfile as sf
    if rate == SR:
        return x
    src, dst = work / "mix.16k.wav", work / f"mix.{rate}.wav"
    sf.write(str(src), x.T, SR, subtype="FLOAT")
    _run(["sox", "-D", str(src), "-e", "floating-point", "-b", "32", str(dst), "rate", "-v", str(rate)])
    y, r = sf.read(str(dst), dtype="float32", always_2d=True)
    want = x.shape[1] * rate // SR
    y = y.T
    if y.shape[1] < want:
        y = np.pad(y, ((0, 0), (0, want - y.shape[1])))
    return np.ascontiguousarray(y[:, :want])


def encode_pcm(path: Path, pcm: np.ndarray, rate: int, fmt: str) -> None:
    import soundfile as sf
    kw = {"compression_level": 1.0} if fmt == "flac" else {}
    sf.write(str(path), pcm.T, rate, subtype="PCM_16", format=fmt.upper(), **kw)


def encode_lossy(path: Path, pcm: np.ndarray, rate: int, fmt: str, bitrate: int) -> None:
    """mp3 (libmp3lame) or ogg/opus (libopus) via PyAV.  Bit-exact flags: no random Ogg
    serial number and no library version strings in the file."""
    import av
    codec = {"mp3": "libmp3lame", "ogg": "libopus"}[fmt]
    layout = "mono" if pcm.shape[0] == 1 else "stereo"
    opts = {"flags": "+bitexact"}
    if fmt == "ogg":
        opts.update({"application": "voip", "vbr": "on"})
    with av.open(str(path), "w", format=fmt, container_options={"fflags": "+bitexact"}) as out:
        st = out.add_stream(codec, rate=rate, layout=layout, options=opts)
        st.bit_rate = bitrate
        step = 4096
        for s in range(0, pcm.shape[1], step):
            chunk = np.ascontiguousarray(pcm[:, s:s + step].T).reshape(1, -1)  # packed s16
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            frame.sample_rate = rate
            frame.pts = s
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


def decode_file(path: Path, *, raw: bool = False) -> tuple[np.ndarray, int]:
    """Decode with PyAV to (channels, n) float32 at SR, as callcoach.audio does.  ``raw``
    keeps the encoder priming (FFmpeg's skip_manual), as a decoder ignoring it would."""
    import av
    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        if raw:
            st.codec_context.options = {"flags2": "+skip_manual"}
        ch = st.channels
        rs = av.AudioResampler(format="fltp", layout="mono" if ch == 1 else "stereo", rate=SR)
        parts = []
        for fr in c.decode(st):
            fr.pts = None
            parts += [o.to_ndarray() for o in rs.resample(fr)]
        parts += [o.to_ndarray() for o in rs.resample(None)]
    return np.concatenate(parts, axis=1), ch


def measure_offset(ref: np.ndarray, got: np.ndarray, max_lag: int = 4000) -> int:
    """Lag (samples at SR) of ``got`` against ``ref`` (positive: got is late)."""
    n = min(len(ref), len(got))
    a, b = ref[:n].astype(np.float64), got[:n].astype(np.float64)
    size = 1 << int(math.ceil(math.log2(2 * n)))
    xc = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[:max_lag + 1], xc[-max_lag:]])
    return int(lags[int(np.argmax(vals))])


# ---------------------------------------------------------------------------------------------
# One call
# ---------------------------------------------------------------------------------------------
def ms(samples: int) -> float:
    return round(samples / SR, 3)


def render_one(script_path: Path, out_dir: Path, versions: dict) -> dict:
    script = yaml.safe_load(script_path.read_text(encoding="utf-8"))
    name = script_path.stem
    errs = validate(script, name)
    if errs:
        raise ScriptError("\n".join(errs))
    out_cfg = script["output"]
    fmt, layout, rate = out_cfg["format"], out_cfg["layout"], int(out_cfg["rate"])
    with tempfile.TemporaryDirectory(prefix=f"render-{name}-") as tmp:
        work = Path(tmp)
        clips = [synth_turn(t["text"], script["voices"][t["speaker"]], work, i)
                 for i, t in enumerate(script["turns"])]
        agent, customer, placed = build_timeline(script, clips)
        mix16 = (agent + customer)[None, :] if layout == "mono" else np.stack([agent, customer])
        mix = resample(mix16, rate, work)
        pcm = to_int16(mix)
        audio_file = out_dir / f"{name}.{fmt}"
        codec_delay = None
        if fmt in ("flac", "wav"):
            encode_pcm(audio_file, pcm, rate, fmt)
            codec = {"flac": "flac", "wav": "pcm_s16le"}[fmt]
        else:
            bitrate = int(out_cfg.get("bitrate", DEFAULT_BITRATE[fmt]))
            codec = {"mp3": "libmp3lame", "ogg": "libopus"}[fmt]
            ref = mix16.mean(axis=0)
            shift = 0
            for _ in range(3):
                src = pcm if shift == 0 else _shift(pcm, shift * rate // SR)
                encode_lossy(audio_file, src, rate, fmt, bitrate)
                dec, _ = decode_file(audio_file)
                off = measure_offset(ref, dec.mean(axis=0))
                if abs(off) <= MAX_CODEC_OFFSET:
                    break
                shift += off
            else:
                raise RuntimeError(f"{name}: could not align the {fmt} encoding (offset {off})")
            raw, _ = decode_file(audio_file, raw=True)
            priming = measure_offset(dec.mean(axis=0), raw.mean(axis=0))
            codec_delay = {
                "bitrate": bitrate,
                "priming_ms": round(1000 * priming / SR, 2),
                "decoded_offset_ms": round(1000 * off / SR, 2),
                "decoded_duration_s": round(dec.shape[1] / SR, 3),
                "input_shift_ms": round(1000 * shift / SR, 2),
                "note": ("priming_ms: encoder delay (mp3: LAME 1105 samples; opus: 312-sample "
                         "pre-skip at 48 kHz), declared in the container (LAME/Xing header; "
                         "Ogg Opus pre-skip and end trim) and removed by FFmpeg/PyAV on decode; "
                         "a decoder that ignores it hears everything that much late. "
                         "decoded_offset_ms: PyAV-decoded audio vs the timeline, measured by "
                         "cross-correlation. input_shift_ms: how far the input was moved "
                         "earlier to cancel a residual offset (0: none was needed)."),
            }

    truth = make_truth(script, name, placed, len(agent), audio_file.name, fmt, codec, layout,
                       rate, codec_delay, versions)
    (out_dir / f"{name}.truth.json").write_text(
        json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    meta = script["metadata"]
    sidecar = {"agent_id": meta["agent_id"], "team": meta["team"], "started_at": meta["started_at"]}
    if layout == "stereo":
        sidecar["agent_channel"] = 0
    sidecar["company"] = script["company"]   # the brand the agent answers for: the recogniser's context
    (out_dir / f"{name}.json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return truth


def _shift(pcm: np.ndarray, k: int) -> np.ndarray:
    """Move audio k samples earlier (k > 0) or later (k < 0), keeping the length."""
    if k > 0:
        return np.pad(pcm[:, k:], ((0, 0), (0, k)))
    if k < 0:
        return np.pad(pcm[:, :k], ((0, 0), (-k, 0)))
    return pcm


def make_truth(script, name, placed, total, audio_name, fmt, codec, layout, rate, codec_delay,
               versions) -> dict:
    labels = script["labels"]
    ct = labels["call_type"]
    sp = {s: sum(p["end"] - p["start"] for p in placed if p["speaker"] == s) for s in SPEAKERS}
    both = sp["agent"] + sp["customer"]
    ratio = round(sp["agent"] / both, 4)
    lo, hi = CALL_TYPES[ct]["expected"]
    # union of speech intervals
    speech, cur_s, cur_e = 0, None, None
    for s, e in sorted((p["start"], p["end"]) for p in placed):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                speech += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    speech += cur_e - cur_s
    overlaps, inter = [], {"agent": 0, "customer": 0}
    turns = []
    for k, p in enumerate(placed):
        row = {"turn": p["i"], "speaker": p["speaker"], "start": ms(p["start"]),
               "end": ms(p["end"]), "text": p["text"]}
        if p["overlap"] is not None:
            prev = placed[k - 1]
            row["overlap_s"] = round(float(p["overlap"]), 3)
            inter[p["speaker"]] += 1
            overlaps.append({"turn": p["i"], "interrupter": p["speaker"],
                             "interrupted": prev["speaker"], "interrupted_turn": prev["i"],
                             "start": ms(p["start"]), "end": ms(prev["end"]),
                             "duration": ms(prev["end"] - p["start"])})
        turns.append(row)
    content = "agent + customer summed" if layout == "mono" else "left = agent, right = customer"
    audio = {"file": audio_name, "format": fmt, "codec": codec, "sample_rate": rate,
             "channels": 1 if layout == "mono" else 2, "layout": layout, "content": content,
             "sidecar": f"{name}.json"}
    if layout == "stereo":
        audio["agent_channel"] = 0
    if codec_delay is not None:
        audio["codec_delay"] = codec_delay
    return {
        "call_id": script["call_id"],
        "script": f"{name}.yaml",
        "company": script["company"],
        "industry": script["industry"],
        "duration_s": ms(total),
        "speech_s": ms(speech),
        "audio": audio,
        "metadata": dict(script["metadata"]),
        "voices": script["voices"],
        "labels": labels,
        "talk_ratio": {
            "agent": ratio, "customer": round(1 - ratio, 4),
            "agent_speech_s": ms(sp["agent"]), "customer_speech_s": ms(sp["customer"]),
            "expected": [lo, hi], "within_expected": bool(lo <= ratio <= hi),
            "definition": "speaker speech time / (agent + customer speech time); "
                          "speech time = sum of turn durations",
        },
        "interruptions": inter,
        "overlaps": overlaps,
        "turns": turns,
        "renderer": {
            "script": "scripts/render_calls.py",
            "tools": versions,
            "peak_dbfs_per_turn": PEAK_DBFS,
            "trim_db_below_peak": TRIM_DB,
            "times": "seconds from the start of the audio, exact to the 16 kHz sample of the "
                     "render timeline, rounded to ms",
        },
    }


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def load_scripts(folder: Path) -> list[Path]:
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        raise SystemExit(f"no *.yaml scripts in {folder}")
    return paths


def check(folder: Path) -> int:
    bad = 0
    for path in load_scripts(folder):
        try:
            script = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            print(f"{path.stem}: YAML error: {exc}", file=sys.stderr)
            bad += 1
            continue
        errs = validate(script, path.stem)
        for e in errs:
            print(e, file=sys.stderr)
        bad += bool(errs)
        if not errs:
            print(f"{path.stem}: ok ({script['labels']['call_type']}, {len(script['turns'])} turns)")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scripts_dir", type=Path)
    ap.add_argument("out_dir", type=Path, nargs="?")
    ap.add_argument("--check", action="store_true", help="only validate the scripts' labels")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.scripts_dir)
    if args.out_dir is None:
        ap.error("OUT_DIR is required unless --check")
    paths = load_scripts(args.scripts_dir)
    errs = []
    for p in paths:
        errs += validate(yaml.safe_load(p.read_text(encoding="utf-8")), p.stem)
    if errs:
        print("\n".join(errs), file=sys.stderr)
        return 1
    require_tools()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    versions = tool_versions()
    for p in paths:
        t = render_one(p, args.out_dir, versions)
        tr = t["talk_ratio"]
        print(f"{t['call_id']}: {t['audio']['file']} {t['duration_s']:.1f} s, "
              f"{len(t['turns'])} turns, agent talk {tr['agent']:.3f} "
              f"({'inside' if tr['within_expected'] else 'OUTSIDE'} {tr['expected']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
