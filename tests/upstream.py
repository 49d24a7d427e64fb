"""Test helpers: files in the exact upstream layouts, and a loopback HTTP server that serves them.

The server honours ``Range: bytes=N-`` (206 with Content-Range, as the D4RL and Google Cloud
Storage servers do) and can be told to cut a response short after some bytes, to simulate a
dropped connection.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import io
import random
import re
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np


# -- D4RL ----------------------------------------------------------------------------------------
def d4rl_arrays(episode_lengths: list[int], obs_dim: int, act_dim: int, seed: int = 0,
                dtype: type = np.float32, final_timeout: bool = True) -> dict[str, np.ndarray]:
    """Arrays as in a D4RL v2 file: episodes end in a terminal (shorter than 1000 steps) or a
    timeout (the ``final_timeout`` one); rewards vary per episode."""
    rng = np.random.default_rng(seed)
    n = sum(episode_lengths)
    obs = rng.normal(size=(n, obs_dim)).astype(dtype)
    terminals = np.zeros(n, dtype=bool)
    timeouts = np.zeros(n, dtype=bool)
    ends = np.cumsum(episode_lengths) - 1
    for i, e in enumerate(ends):
        if final_timeout and i % 2 == 1:
            timeouts[e] = True
        else:
            terminals[e] = True
    return {
        "observations": obs,
        "next_observations": np.roll(obs, -1, axis=0),
        "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(dtype),
        "rewards": rng.uniform(0, 3, size=n).astype(dtype),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def write_d4rl(path: Path, arrays: dict[str, np.ndarray], metadata: bool = True) -> Path:
    """A D4RL v2 HDF5 file: gzip datasets at the top level, ``infos/``, and ``metadata/``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(arrays["observations"])
    with h5py.File(path, "w") as f:
        for k, a in arrays.items():
            f.create_dataset(k, data=a, compression="gzip")
        f.create_dataset("infos/action_log_probs", data=np.zeros(n, np.float32), compression="gzip")
        f.create_dataset("infos/qpos", data=np.zeros((n, 6), np.float32), compression="gzip")
        f.create_dataset("infos/qvel", data=np.zeros((n, 6), np.float32), compression="gzip")
        if metadata:
            f.create_dataset("metadata/algorithm", data="SAC")
            f.create_dataset("metadata/iteration", data=np.int64(1000))
            f.create_dataset("metadata/policy/fc0/weight", data=np.zeros((4, 4), np.float32))
    return path


# -- DQN-replay ----------------------------------------------------------------------------------
def write_npy_gz(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(buf.getvalue())


def dqn_checkpoint(episode_lengths: list[int], seed: int, stack: int = 4, capacity: int | None = None,
                   wrap_at: int | None = None) -> dict[str, np.ndarray]:
    """One checkpoint in dopamine's circular-buffer layout: ``stack - 1`` zero rows before each
    episode. Frame ``r`` of every real row holds the row's global step number in its first pixels
    (so tests can check which frames were kept). With ``wrap_at``, the buffer has wrapped: storage
    is rotated so the write cursor sits at ``wrap_at``, and the invalid range marks it."""
    pad = stack - 1
    rows = sum(l + pad for l in episode_lengths)
    capacity = capacity or rows
    rng = np.random.default_rng(seed)
    obs = np.zeros((capacity, 84, 84), np.uint8)
    act = np.zeros(capacity, np.int32)
    rew = np.zeros(capacity, np.float32)
    term = np.zeros(capacity, np.uint8)
    r = 0
    for ep, length in enumerate(episode_lengths):
        r += pad
        for t in range(length):
            obs[r, 0, :4] = np.frombuffer(np.int32(seed * 1_000_000 + r).tobytes(), np.uint8)
            obs[r, 1:, :] = rng.integers(1, 255, size=(83, 84), dtype=np.uint8) // 64 + 1
            act[r] = rng.integers(0, 4)
            rew[r] = float(rng.integers(0, 2))
            r += 1
        term[r - 1] = 1
    add_count = rows
    cursor = add_count % capacity
    invalid = np.array([(cursor - 1 + i) % capacity for i in range(5)], np.int64)
    if wrap_at is not None:
        shift = wrap_at
        obs, act, rew, term = (np.roll(a, shift, axis=0) for a in (obs, act, rew, term))
        add_count = capacity + wrap_at  # wrapped once; the cursor is now at wrap_at
        invalid = np.array([(wrap_at - 1 + i) % capacity for i in range(5)], np.int64)
    return {"observation": obs, "action": act, "reward": rew, "terminal": term,
            "add_count": np.array(add_count, np.int64), "invalid_range": invalid}


def write_dqn_checkpoint(replay_logs: Path, ckpt: int, arrays: dict[str, np.ndarray]) -> None:
    """Write one checkpoint's files with upstream names into ``replay_logs``."""
    for element, a in arrays.items():
        prefix = "$store$_" if element in ("observation", "action", "reward", "terminal") else ""
        write_npy_gz(replay_logs / f"{prefix}{element}_ckpt.{ckpt}.gz", a)


# -- loopback HTTP server ------------------------------------------------------------------------
#: The ways a chaos server misbehaves on a request ("ok": it does not).
CHAOS = ("ok", "cut", "500", "503", "drip", "long-length", "short-length", "ignore-range", "other-file")


class Server:
    """Serves ``root`` on 127.0.0.1 with Range support; ``cut_after[relpath] = n`` drops the
    connection after ``n`` body bytes of the next response for that path; ``requests`` logs
    (path, range header)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cut_after: dict[str, int] = {}
        self.chunked: set[str] = set()  # paths answered with Transfer-Encoding: chunked (no Content-Length)
        self.html = False  # answer every path with a 200 HTML page (a portal or an index page, not the file)
        self.down: dict[str, int] = {}  # path prefix -> the error status every path under it answers
        self.requests: list[tuple[str, str | None]] = []
        #: chaos(path, range header) -> one of CHAOS, per request: how to misbehave on it
        self.chaos: Callable[[str, str | None], tuple[str, float]] | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rel = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
                server.requests.append((rel, self.headers.get("Range")))
                status = next((code for prefix, code in server.down.items() if rel.startswith(prefix)), None)
                if status is not None:
                    self.send_error(status)
                    return
                if server.html:
                    page = b"<html><body>Sign in to continue</body></html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                path = (server.root / rel).resolve()
                if server.root.resolve() not in path.parents or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                mode, fraction = server.chaos(rel, self.headers.get("Range")) if server.chaos else ("ok", 0.0)
                if mode in ("500", "503"):
                    self.send_error(int(mode))
                    return
                if mode == "other-file":  # a different file of the same size
                    data = random.Random(len(data)).randbytes(len(data))
                start = 0
                m = re.match(r"bytes=(\d+)-$", self.headers.get("Range") or "")
                if m and mode == "ignore-range":
                    m = None  # answers the whole file, 200, as a server without Range support
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                cut = server.cut_after.pop(rel, None)
                self.send_header("Accept-Ranges", "bytes")
                if rel in server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    sent, size = 0, 8192
                    for i in range(0, len(body), size):
                        piece = body[i : i + size]
                        if cut is not None and sent + len(piece) > cut:  # stop in the middle of a chunk
                            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece[: cut - sent])
                            self.wfile.flush()
                            self.close_connection = True
                            return
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                        sent += len(piece)
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if mode == "cut":
                    cut = int(fraction * len(body))
                lie = {"long-length": max(1, len(body) // 3), "short-length": -max(1, len(body) // 3)}.get(mode, 0)
                self.send_header("Content-Length", str(max(0, len(body) + lie)))
                self.end_headers()
                if mode == "drip":  # slowly, in small pieces
                    for i in range(0, len(body), max(1, len(body) // 40)):
                        self.wfile.write(body[i : i + max(1, len(body) // 40)])
                        self.wfile.flush()
                        time.sleep(0.001)
                    return
                if lie:  # the whole body after a wrong Content-Length, then the connection closes
                    with contextlib.suppress(OSError):
                        self.wfile.write(body)
                        self.wfile.flush()
                    self.close_connection = True
                    return
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def serve(root: Path) -> Iterator[Server]:
    with Server(root) as s:
        yield s


# -- RL Unplugged Atari (TFRecords of tf.train.Example episodes) ----------------------------------
def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def tf_example(features: dict[str, list[bytes] | np.ndarray]) -> bytes:
    """A serialized ``tf.train.Example``: bytes lists, packed float32 lists and packed int64 lists
    (as TensorFlow writes them), written from the protobuf wire format."""
    entries = b""
    for key, values in features.items():
        if isinstance(values, list):
            feature = _field(1, b"".join(_field(1, v) for v in values))
        elif values.dtype.kind == "f":
            feature = _field(2, _field(1, values.astype("<f4").tobytes()))
        else:
            feature = _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))
        entries += _field(1, _field(1, key.encode()) + _field(2, feature))
    return _field(1, entries)


def tfrecord_bytes(records: list[bytes]) -> bytes:
    from offbench.data.tfrecord import masked_crc

    out = b""
    for data in records:
        length = struct.pack("<Q", len(data))
        out += length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))
    return out


def png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def rlu_shard(ckpt: int, arrays: dict[str, np.ndarray], stack: int = 4) -> bytes:
    """The episodes of one DQN-replay checkpoint written from its start (``dqn_checkpoint`` without
    ``wrap_at``) as RL Unplugged's gzip-compressed TFRecord shard of that checkpoint: one
    ``tf.train.Example`` per episode, with the terminal state's frame as an extra last step (its
    action and reward 0, discount 0), as the upstream stores a terminated episode."""
    term = arrays["terminal"].astype(bool)
    pad, records, start = stack - 1, [], stack - 1
    for idx, end in enumerate(np.flatnonzero(term)):
        rows = np.arange(start, end + 1)
        frames = [png(arrays["observation"][r]) for r in rows] + [png(np.full((84, 84), 7, np.uint8))]
        n = len(rows) + 1
        rewards = np.append(arrays["reward"][rows], 0.0).astype(np.float32)
        records.append(tf_example({
            "checkpoint_idx": np.array([ckpt]), "episode_idx": np.array([idx]),
            "episode_return": np.array([rewards.sum()], np.float32),
            "clipped_episode_return": np.array([np.clip(rewards, -1, 1).sum()], np.float32),
            "observations": frames, "actions": np.append(arrays["action"][rows], 0).astype(np.int64),
            "unclipped_rewards": rewards, "clipped_rewards": np.clip(rewards, -1, 1),
            "discounts": np.array([1.0] * (n - 1) + [0.0], np.float32)}))
        start = end + 1 + pad
    return gzip.compress(tfrecord_bytes(records), compresslevel=1)
