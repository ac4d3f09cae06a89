"""Builds two small untrained speaker-embedding ONNX models (no trained speaker model can be
downloaded here) and runs them with Python's onnxruntime, for
`onnx_speaker.rs` to compare against:

- fbank.onnx: input `feats` float [batch, frames, 80] (Kaldi filter banks, the WeSpeaker
  layout), output `embs` float [batch, 64]: a per-frame projection with ReLU, mean and
  standard-deviation pooling over time, a final projection (an untrained x-vector shape);
- wave.onnx: input `wav` float [batch, samples], output float [batch, 1, 40]: the mean log
  mel spectrum over time minus its mean over bins (a gain-free spectral envelope: no learned
  weights, yet it tells a high voice from a low one).

Usage: build_and_run.py DIR [WAV WINDOWS_JSON]
  WINDOWS_JSON: [[start_sample, end_sample], ...] into the 16 kHz mono 16-bit WAV.
With only DIR, builds the models and stops. Otherwise prints JSON: {"fbank": first window's raw filter banks (kaldi-native-fbank, no mean
subtraction), "fbank_embs": [...], "wave_embs": [...]} per window.
"""
import json
import sys
import wave

import kaldi_native_fbank as knf
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

out_dir = sys.argv[1]
rng = np.random.default_rng(20261121)


def tensor(name, array):
    return helper.make_tensor(name, TensorProto.FLOAT, array.shape, array.flatten().tolist())


def save(graph, path):
    # Opset 18: ReduceMean takes its axes as an input.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, path)


hidden, dims = 256, 64
w1 = (rng.standard_normal((80, hidden)) / np.sqrt(80)).astype(np.float32)
b1 = (rng.standard_normal(hidden) * 0.5).astype(np.float32)
w2 = (rng.standard_normal((2 * hidden, dims)) / np.sqrt(2 * hidden)).astype(np.float32)
save(
    helper.make_graph(
        [
            helper.make_node("MatMul", ["feats", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h"]),
            helper.make_node("ReduceMean", ["h", "time"], ["mean"], keepdims=1),
            helper.make_node("Sub", ["h", "mean"], ["centred"]),
            helper.make_node("Mul", ["centred", "centred"], ["sq"]),
            helper.make_node("ReduceMean", ["sq", "time"], ["var"], keepdims=0),
            helper.make_node("Sqrt", ["var"], ["std"]),
            helper.make_node("Squeeze", ["mean", "time"], ["mean2"]),
            helper.make_node("Concat", ["mean2", "std"], ["pooled"], axis=1),
            helper.make_node("MatMul", ["pooled", "w2"], ["embs"]),
        ],
        "random_xvector",
        [helper.make_tensor_value_info("feats", TensorProto.FLOAT, ["batch", "frames", 80])],
        [helper.make_tensor_value_info("embs", TensorProto.FLOAT, ["batch", dims])],
        initializer=[
            tensor("w1", w1),
            tensor("b1", b1),
            tensor("w2", w2),
            helper.make_tensor("time", TensorProto.INT64, [1], [1]),
        ],
    ),
    f"{out_dir}/fbank.onnx",
)

# Mel filters (HTK-style triangles, 40 bins up to 8 kHz) over the 201 bins of a 400-point DFT.
def mel_matrix(bins=40, n_fft=400, rate=16000):
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
    edges = np.linspace(mel(20.0), mel(rate / 2), bins + 2)
    hz = 700.0 * (10 ** (edges / 2595.0) - 1.0)
    freqs = np.arange(n_fft // 2 + 1) * rate / n_fft
    m = np.zeros((n_fft // 2 + 1, bins), dtype=np.float32)
    for b in range(bins):
        lo, c, hi = hz[b], hz[b + 1], hz[b + 2]
        m[:, b] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return m


save(
    helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["wav", "last"], ["signal"]),
            helper.make_node("STFT", ["signal", "hop", "window", "frame_length"], ["spec"]),
            helper.make_node("Mul", ["spec", "spec"], ["sq"]),
            helper.make_node("ReduceSum", ["sq", "last"], ["power"], keepdims=0),
            helper.make_node("MatMul", ["power", "mel"], ["mel_power"]),
            helper.make_node("Add", ["mel_power", "floor"], ["floored"]),
            helper.make_node("Log", ["floored"], ["log_mel"]),
            helper.make_node("ReduceMean", ["log_mel", "time"], ["envelope"], keepdims=1),
            helper.make_node("ReduceMean", ["envelope", "last"], ["gain"], keepdims=1),
            helper.make_node("Sub", ["envelope", "gain"], ["shape"]),
        ],
        "spectral_envelope",
        [helper.make_tensor_value_info("wav", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("shape", TensorProto.FLOAT, ["batch", 1, 40])],
        initializer=[
            helper.make_tensor("last", TensorProto.INT64, [1], [-1]),
            helper.make_tensor("hop", TensorProto.INT64, [], [160]),
            helper.make_tensor("frame_length", TensorProto.INT64, [], [400]),
            tensor("window", np.hanning(400).astype(np.float32)),
            tensor("mel", mel_matrix()),
            tensor("floor", np.array([1e-6], dtype=np.float32)),
            helper.make_tensor("time", TensorProto.INT64, [1], [1]),
        ],
    ),
    f"{out_dir}/wave.onnx",
)

if len(sys.argv) < 4:
    sys.exit(0)
wav_path, windows = sys.argv[2], json.loads(sys.argv[3])
with wave.open(wav_path, "rb") as w:
    assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def fbank(samples_int16_scale):
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = 80
    fb = knf.OnlineFbank(opts)
    fb.accept_waveform(16000, samples_int16_scale.tolist())
    fb.input_finished()
    return np.array([fb.get_frame(i) for i in range(fb.num_frames_ready)], dtype=np.float32)


fbank_session = ort.InferenceSession(f"{out_dir}/fbank.onnx", providers=["CPUExecutionProvider"])
wave_session = ort.InferenceSession(f"{out_dir}/wave.onnx", providers=["CPUExecutionProvider"])
result = {"fbank": None, "fbank_embs": [], "wave_embs": []}
for start, end in windows:
    samples = pcm[start:end].astype(np.float32)
    feats = fbank(samples)
    if result["fbank"] is None:
        result["fbank"] = feats.tolist()
    feats = feats - feats.mean(axis=0, keepdims=True)
    emb = fbank_session.run(None, {"feats": feats[np.newaxis]})[0][0]
    result["fbank_embs"].append(emb.tolist())
    wav = (samples / 32768.0)[np.newaxis]
    result["wave_embs"].append(wave_session.run(None, {"wav": wav})[0].flatten().tolist())
print(json.dumps(result))
