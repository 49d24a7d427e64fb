"""DQN-replay (Agarwal et al., batch_rl) Atari data, subsampled with the Decision Transformer recipe.

Upstream: per checkpoint ``N``, gzip-compressed ``.npy`` files under
``dqn/<Game>/<run>/replay_logs/``: ``$store$_observation_ckpt.N.gz`` (rows, 84, 84) uint8 single
frames, ``$store$_action`` int32, ``$store$_reward`` float32, ``$store$_terminal`` uint8, and
``add_count_ckpt.N.gz`` (0-d), ``invalid_range_ckpt.N.gz``. The buffer is circular; before each
episode it holds ``stack - 1`` zero padding rows (dopamine's frame-stack convention).

Recipe (DT paper, ``create_dataset`` in its Atari code): repeatedly pick a checkpoint at random,
continue reading it from its own cursor within its first ``per_checkpoint`` rows, take about
``trajectories_per_visit`` whole episodes, until ``transitions`` rows are collected. Here only whole
episodes are kept (partial ones at the read limit, at the buffer's start and around its write
cursor are skipped), and the padding rows are dropped: they are not environment steps. The cache
keeps single uint8 frames plus ``stack_indices`` (rows, stack): the rows of the frames that make
each state, -1 where the stack reaches before the episode start (a zero frame).

Nothing is unpickled: ``.npy`` headers are parsed with numpy's format reader and object dtypes
are refused.
"""

from __future__ import annotations

import gzip
import threading
import tokenize
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from offbench.data.download import discard, download
from offbench.data.sources.base import SOURCES, Arrays, FetchContext
from offbench.data.spec import DatasetSpec
from offbench.errors import OffbenchError

STORE = ("observation", "action", "reward", "terminal")
EXTRA = ("add_count", "invalid_range")
FRAME = (84, 84)


def file_name(element: str, ckpt: int) -> str:
    """Upstream file name of one element of checkpoint ``ckpt``."""
    prefix = "$store$_" if element in STORE else ""
    return f"{prefix}{element}_ckpt.{ckpt}.gz"


def checked_count(path: Path) -> int:
    """Dopamine's ``add_count``: one integer (a one-line error for anything else)."""
    with NpyStream(path) as s:
        count = s.read_all()
    if count.size != 1 or count.dtype.kind not in "iu":
        raise OffbenchError(f"{path}: expected one integer, got shape {count.shape} of {count.dtype}")
    return int(count.reshape(()))


# -- reading gzip-compressed .npy without unpickling ---------------------------------------------
class NpyStream:
    """A gzip-compressed ``.npy`` file opened for sequential reading of its rows."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.f: BinaryIO = gzip.open(path, "rb")  # type: ignore[assignment]
        try:
            version = np.lib.format.read_magic(self.f)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            self.shape, fortran, self.dtype = reader(self.f)
        except (OSError, EOFError, ValueError, SyntaxError, tokenize.TokenError, zlib.error) as e:
            self.f.close()  # (a damaged header fails numpy's parse of its dict in any of these ways)
            raise OffbenchError(f"{path}: not a gzip-compressed .npy file ({e})") from None
        if self.dtype.hasobject or fortran:
            self.f.close()
            raise OffbenchError(f"{path}: object or Fortran-ordered arrays are not accepted")
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize if self.shape else 0
        self.pos = 0

    def __enter__(self) -> NpyStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.f.close()

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 0

    def read(self, count: int, out: np.ndarray | None = None) -> np.ndarray:
        """The next ``count`` rows (into ``out`` if given)."""
        count = min(count, self.rows - self.pos)
        if out is None:
            out = np.empty((count, *self.shape[1:]), dtype=self.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))[: count * self.row_bytes]
        got = 0
        try:
            while got < len(view):
                n = self.f.readinto(view[got:])  # type: ignore[attr-defined]
                if not n:
                    break
                got += n
        except (OSError, EOFError, zlib.error) as e:
            raise OffbenchError(f"{self.path}: damaged or truncated ({e})") from None
        if got != len(view):
            raise OffbenchError(f"{self.path}: truncated: ended after {self.pos + got // max(self.row_bytes, 1)} "
                                f"of {self.rows} rows")
        self.pos += count
        return out[:count]

    def skip(self, count: int) -> None:
        """Move past ``count`` rows."""
        step = max(1, (64 << 20) // max(self.row_bytes, 1))
        while count > 0:
            n = min(step, count)
            self.read(n)
            count -= n

    def read_all(self) -> np.ndarray:
        if not self.shape:
            try:
                data = self.f.read(self.dtype.itemsize)
            except (OSError, EOFError, zlib.error) as e:
                raise OffbenchError(f"{self.path}: damaged or truncated ({e})") from None
            if len(data) != self.dtype.itemsize:
                raise OffbenchError(f"{self.path}: truncated")
            return np.frombuffer(data, dtype=self.dtype).reshape(())
        return self.read(self.rows)


# -- one checkpoint ------------------------------------------------------------------------------
class Episodes:
    """A checkpoint's whole episodes as (first row, last row), visited in order from a cursor; its
    actions and rewards by row, and its frames read on demand (see :class:`Checkpoint`)."""

    episodes: list[tuple[int, int]]
    actions: np.ndarray
    rewards: np.ndarray
    where: Path  # the file named in errors
    cursor: int = 0

    def take(self, n: int) -> list[tuple[int, int]]:
        """The next ``n`` whole episodes from this checkpoint's cursor (fewer near its end)."""
        eps = self.episodes[self.cursor : self.cursor + n]
        self.cursor += len(eps)
        return eps

    def frames(self, first: int, last: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Checkpoint(Episodes):
    """The first ``limit`` rows of one DQN-replay checkpoint: small arrays in memory, frames read
    on demand."""

    def __init__(self, files: dict[str, Path], limit: int, stack: int) -> None:
        self.files, self.where = files, files["observation"]
        self._stream: NpyStream | None = None
        obs_path = self.files["observation"]
        with NpyStream(obs_path) as s:
            rows = s.rows
            if s.dtype != np.uint8 or tuple(s.shape[1:]) != FRAME:
                raise OffbenchError(f"{obs_path}: frames are {s.dtype} {tuple(s.shape[1:])}, expected uint8 {FRAME}")
        small = {}
        for element in ("action", "reward", "terminal"):
            with NpyStream(self.files[element]) as s:
                if s.shape[:1] != (rows,) or len(s.shape) != 1:
                    raise OffbenchError(f"{self.files[element]}: has shape {s.shape} but the checkpoint's "
                                        f"observations have {rows} rows (mismatched lengths)")
                small[element] = s.read(min(limit, rows))
        add_count = checked_count(self.files["add_count"])
        with NpyStream(self.files["invalid_range"]) as s:
            invalid = {int(i) for i in s.read_all().reshape(-1)}
        self.actions = small["action"].astype(np.int64)
        self.rewards = small["reward"].astype(np.float32)
        terminals = small["terminal"].astype(bool)
        self.episodes = whole_episodes(terminals, stack - 1, fresh=add_count <= rows, invalid=invalid)

    def frames(self, first: int, last: int) -> np.ndarray:
        """Frames of rows ``first..last`` (inclusive). Visits only move forward, so one open stream
        per checkpoint decompresses each row at most once."""
        if self._stream is None or first < self._stream.pos:
            self.close()
            self._stream = NpyStream(self.files["observation"])
        self._stream.skip(first - self._stream.pos)
        return self._stream.read(last - first + 1)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.f.close()
            self._stream = None


def whole_episodes(terminals: np.ndarray, pad: int, fresh: bool, invalid: set[int]) -> list[tuple[int, int]]:
    """(first, last) rows of every whole episode: it follows a terminal and ``pad`` padding rows
    (or the buffer's start, when the buffer never wrapped), ends at a terminal, and neither it nor
    its padding touches the invalid rows around the write cursor."""
    ends = np.flatnonzero(terminals)
    starts = list(ends + 1 + pad)
    if fresh:
        starts.insert(0, pad)
    out = []
    for s in starts:
        later = ends[ends >= s]
        if not len(later):
            break
        e = int(later[0])
        if invalid.isdisjoint(range(s - pad, e + 1)):
            out.append((int(s), e))
    return out


# -- where a checkpoint's files lie ---------------------------------------------------------------
class Layout:
    """How one upstream stores the checkpoints: the files of checkpoint ``ckpt`` (paths under the
    base URL), where they lie in a local copy, and how to read them. DQN-replay's is this class;
    RL Unplugged's (:mod:`offbench.data.sources.rl_unplugged`) is another."""

    name = "DQN-replay"
    quote = True  # '$' in the file names is sent as %24

    def relative_paths(self, spec: DatasetSpec, ckpt: int) -> dict[str, str]:
        rel_dir = f"dqn/{spec.params['game']}/{spec.params['run']}/replay_logs"
        return {e: f"{rel_dir}/{file_name(e, ckpt)}" for e in STORE + EXTRA}

    def find_local(self, spec: DatasetSpec, root: Path) -> Path:
        """The directory of a local copy that holds the files (``root`` or one below it)."""
        rel_dir = f"dqn/{spec.params['game']}/{spec.params['run']}/replay_logs"
        for cand in (root, root / "replay_logs", root / rel_dir, root / rel_dir.split("/", 1)[1]):
            if any(cand.glob("$store$_observation_ckpt.*.gz")):
                return cand
        raise OffbenchError(f"{root}: no DQN-replay checkpoint files ($store$_observation_ckpt.N.gz) in it or in "
                            f"{rel_dir} below it")

    def open(self, files: dict[str, Path], limit: int, stack: int) -> Episodes:
        return Checkpoint(files, limit, stack)


DQN_REPLAY = Layout()


class Files:
    """Locates (downloading in parallel, a few checkpoints ahead) the files of each checkpoint."""

    def __init__(self, spec: DatasetSpec, ctx: FetchContext, layout: Layout) -> None:
        self.spec, self.ctx, self.layout = spec, ctx, layout
        local = ctx.local or (Path(spec.params["local_dir"]) if spec.params.get("local_dir") else None)
        if local is not None and not local.exists():
            raise OffbenchError(f"{spec.name}: {local} does not exist (expected a {layout.name} directory)")
        self.local = layout.find_local(spec, local) if local is not None else None
        self.pool = ThreadPoolExecutor(max_workers=max(1, ctx.workers)) if self.local is None else None
        self.pending: dict[int, list[Future]] = {}
        self.cancel = threading.Event()
        self.origins: dict[str, None] = {}  # the directories the files came from (upstream or a mirror)

    def prefetch(self, ckpt: int) -> None:
        if self.pool is None or ckpt in self.pending:
            return
        jobs = [self.ctx.downloads_of(self.spec, rel, quote=self.layout.quote)
                for rel in self.layout.relative_paths(self.spec, ckpt).values()]
        self.pending[ckpt] = [self.pool.submit(download, j, self.ctx.progress, self.cancel) for j in jobs]

    def get(self, ckpt: int) -> dict[str, Path]:
        rels = self.layout.relative_paths(self.spec, ckpt)
        if self.local is not None:
            files = {e: self.local / rel.rsplit("/", 1)[-1] for e, rel in rels.items()}
            missing = [str(p) for p in files.values() if not p.is_file()]
            if missing:
                raise OffbenchError(f"{missing[0]}: missing from the {self.layout.name} directory")
            return files
        self.prefetch(ckpt)
        got = [f.result() for f in self.pending[ckpt]]
        self.origins.update(dict.fromkeys(g.url.rsplit("/", 1)[0] for g in got))
        return {e: g.path for e, g in zip(rels, got)}

    def discard(self, ckpt: int) -> None:
        if self.local is None:
            for f in self.pending.get(ckpt, []):
                if f.done() and f.exception() is None:
                    discard(f.result().path)

    def close(self) -> None:
        """Stop downloads still running (their .part files stay, to resume) and wait for the threads."""
        self.cancel.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# -- the subset ----------------------------------------------------------------------------------
def picks(seed: int, first: int, count: int) -> Iterator[int]:
    """The checkpoint visited at each step: uniform over ``first..first+count-1``, deterministic."""
    rng = np.random.default_rng(seed)
    while True:
        yield from (int(c) for c in rng.integers(first, first + count, size=1024))


def sample_subset(spec: DatasetSpec, ctx: FetchContext, layout: Layout = DQN_REPLAY) -> tuple[Arrays, dict[str, Any]]:
    """Collect whole episodes with the DT recipe until ``transitions`` rows; canonical arrays.
    ``layout``: the upstream's file layout (the recipe is the same whichever holds the episodes)."""
    p = spec.params
    target, limit, per_visit = int(p["transitions"]), int(p["per_checkpoint"]), int(p["trajectories_per_visit"])
    first, count, stack = int(p.get("first_checkpoint", 0)), int(p["checkpoints"]), int(p.get("frame_stack", 4))
    files = Files(spec, ctx, layout)
    ckpts: dict[int, Episodes] = {}
    frames = np.empty((target + limit, *FRAME), dtype=np.uint8)  # pages are touched only as filled
    actions, rewards, starts, n = [], [], [], 0
    exhausted: set[int] = set()
    order = picks(int(p["seed"]), first, count)
    lookahead: list[int] = []
    try:
        while n < target and len(exhausted) < count:
            while len(lookahead) < 64:
                lookahead.append(next(order))
            c = lookahead.pop(0)
            for ahead in dict.fromkeys([c, *lookahead]):  # distinct, in visiting order
                if sum(k not in ckpts for k in files.pending) >= ctx.workers:
                    break
                if ahead not in exhausted:
                    files.prefetch(ahead)
            if c in exhausted:
                continue
            if c not in ckpts:
                paths = files.get(c)
                try:
                    ckpts[c] = layout.open(paths, limit, stack)
                except OffbenchError:
                    files.discard(c)
                    raise
            ck = ckpts[c]
            eps = ck.take(per_visit)
            if not eps:
                exhausted.add(c)
                continue
            lo, hi = eps[0][0] - (stack - 1), eps[-1][1]
            try:
                window = ck.frames(lo, hi)
                for s, _ in eps:
                    if window[s - (stack - 1) - lo : s - lo].any() or ck.actions[s - stack + 1 : s].any() \
                            or ck.rewards[s - stack + 1 : s].any():
                        raise OffbenchError(f"{ck.where}: rows {s - stack + 1}-{s - 1} before the "
                                            f"episode at row {s} are not zero padding; not a DQN-replay checkpoint")
            except OffbenchError:
                files.discard(c)  # a damaged download is fetched again next time
                raise
            for s, e in eps:
                length = e - s + 1
                if n + length > len(frames):
                    break
                frames[n : n + length] = window[s - lo : e - lo + 1]
                actions.append(ck.actions[s : e + 1])
                rewards.append(ck.rewards[s : e + 1])
                starts.append(n)
                n += length
    finally:
        files.close()
        for ck in ckpts.values():
            ck.close()
    if not starts:
        raise OffbenchError(f"{spec.name}: the checkpoints hold no whole episode within their first {limit} rows")
    terminals = np.zeros(n, dtype=bool)
    ends = np.append(np.asarray(starts[1:], dtype=np.int64), n) - 1
    terminals[ends] = True
    arrays = {
        "observations": frames[:n],
        "actions": np.concatenate(actions),
        "rewards": np.concatenate(rewards),
        "terminals": terminals,
        "timeouts": np.zeros(n, dtype=bool),
        "episode_starts": np.asarray(starts, dtype=np.int64),
    }
    arrays["stack_indices"] = stack_indices(arrays["episode_starts"], n, stack)
    attrs = {"origin": files.local and str(files.local) or ", ".join(files.origins),
             "checkpoints_read": sorted(ckpts), "frame_stack": stack, "num_actions": int(p["num_actions"]),
             "recipe": f"DT: random checkpoint of {first}..{first + count - 1}, {per_visit} whole episodes per visit "
                       f"from a per-checkpoint cursor within the first {limit} rows, until {target} transitions"}
    return arrays, attrs


def stack_indices(episode_starts: np.ndarray, n: int, stack: int) -> np.ndarray:
    """(n, stack) int32 rows of each state's frames, oldest first; -1 before the episode start."""
    rows = np.arange(n, dtype=np.int64)
    start_of = np.repeat(episode_starts, np.diff(np.append(episode_starts, n)))
    idx = rows[:, None] + np.arange(-(stack - 1), 1)[None, :]
    return np.where(idx >= start_of[:, None], idx, -1).astype(np.int32)


SOURCES.register("dqn_replay")(sample_subset)
