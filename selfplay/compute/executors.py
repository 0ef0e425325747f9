"""Where the verify stage's checks run: here, on the run's one sandbox verifier
(`LocalExecutor`), or fanned out to Ray actors that each hold their own verifier
(`RayExecutor`, `executor.kind = "ray"`).

Both take a function `fn(verifier, chunk, progress)` and a list of chunks, and yield
`(chunk index, fn's result)` as chunks finish. Only the caller (the driver) touches the store:
it writes each chunk's result itself, by attempt id, in one transaction. A chunk whose actor
died is sent again (to a restarted or another actor) and only a chunk that came back whole is
ever yielded, so a retry can neither write twice nor write half a chunk. That fan-out
(`fan_out`) also sends the sampling stages' chunks to sampler actors (`selfplay.compute.samplers`).
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.util
from typing import Callable, Iterator, Sequence

from puzzles.errors import SelfplayError
from sandbox import Verifier, VerifierConfig

RAY_EXTRA = 'pip install -e ".[ray]"'
RESTART_WAIT_SECONDS = 600.0
"""How long a chunk whose actor died waits for the actor's restart before the stage stops
(the default of `executor.restart_wait`)."""
_POLL_FIRST, _POLL_MOST = 0.1, 2.0
"""Seconds between two asks whether a restarting actor is back: doubling from the first to
the most."""
IN_FLIGHT = 2
"""Chunks queued on one actor at a time: enough that it never waits for the driver between
two chunks, few enough that an actor that dies takes little work with it."""


def require_ray() -> None:
    """Refuse early, with the fix, when the config asks for Ray and it is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise SelfplayError(f'executor.kind = "ray" needs Ray, which is not installed: '
                            f'{RAY_EXTRA} (or pip install "ray>=2.9")')


class LocalExecutor:
    """The chunks one after another on `verifier` (owned by the caller, not closed here)."""

    chunk = 512
    """Attempts verified (then written) at a time: a resume loses at most one chunk's work."""

    def __init__(self, verifier: Verifier):
        self.verifier = verifier

    @property
    def version(self) -> str:
        return self.verifier.version

    def map(self, fn: Callable, chunks: Sequence, progress: bool = False) -> Iterator:
        for i, chunk in enumerate(chunks):
            yield i, fn(self.verifier, chunk, progress)

    def close(self) -> None:
        pass


class VerifyActor:
    """What one Ray actor holds: a sandbox verifier of its own (its server, zygote and workers
    live on the actor's node). Made a Ray actor class by `RayExecutor`, so that importing this
    module does not need Ray."""

    def __init__(self, config: VerifierConfig):
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.verifier = Verifier(config)
        # Inactive layers are in `version` (stored with the round's solutions) and `layers()`;
        # as warnings they would only reach a worker's log. Kept for whoever debugs an actor.
        self.warnings = [str(w.message) for w in caught]

    def version(self) -> str:
        return self.verifier.version

    def layers(self) -> dict:
        return self.verifier.layers()

    def run(self, fn: Callable, chunk):
        return fn(self.verifier, chunk, False)

    def close(self) -> None:
        self.verifier.close()


def connect(address: str) -> bool:
    """Connect to Ray (or start a local one) unless this process already is; True if this
    call did, so that whoever called it knows to shut it down."""
    require_ray()
    import ray
    if ray.is_initialized():
        return False
    if address:  # a cluster's own settings (its dashboard) are its own business
        ray.init(address=address, logging_level="WARNING")
    else:  # maybe a new local Ray, which needs no dashboard
        ray.init(logging_level="WARNING", include_dashboard=False)
    return True


class RayExecutor:
    """Chunks fanned out to `config.actors` Ray actors, each with its own sandbox verifier."""

    def __init__(self, config, verifier: VerifierConfig):
        import ray
        self.config = config
        self.chunk = config.chunk
        self._started = connect(config.address)
        self._actors: list = []
        try:
            n = config.actors or max(1, int(ray.cluster_resources().get("CPU", 1)
                                            // config.actor_cpus))
            # verifier.workers = 0 means "every core of the machine": on an actor that reserved
            # actor_cpus of them (maybe beside other actors on its node), it means those.
            actor_config = dataclasses.replace(verifier,
                                               workers=verifier.workers or config.actor_cpus)
            # max_restarts=-1: a dead actor (its process killed, its node lost) comes back with
            # a fresh verifier; how often a chunk may be retried is bounded by the driver
            # (max_retries), not by the actor. An actor whose constructor raises (strict mode
            # on a node lacking a layer) is not restarted: that is an error, not a crash.
            actor_class = ray.remote(VerifyActor).options(num_cpus=config.actor_cpus,
                                                          max_restarts=-1)
            self._actors = [actor_class.remote(actor_config) for _ in range(n)]
            # Each actor reports its version (limits and active layers); nodes with different
            # kernels may differ, and the stored provenance should say so rather than pick one.
            versions = ray.get([a.version.remote() for a in self._actors])
        except ray.exceptions.RayActorError as e:
            self.close()
            # Ray's message is the actor's whole traceback; its last line is the reason
            # (e.g. "SelfplayError: sandbox: strict mode needs every kernel layer ...").
            reason = str(e).strip().splitlines()[-1]
            raise SelfplayError(f"a Ray verify actor did not start: {reason}") from None
        except BaseException:
            self.close()
            raise
        self.version = "; ".join(sorted(set(versions)))

    @property
    def actors(self) -> list:
        return list(self._actors)

    def map(self, fn: Callable, chunks: Sequence, progress: bool = False) -> Iterator:
        return fan_out(self._actors, lambda actor, i: actor.run.remote(fn, chunks[i]),
                       len(chunks), max_retries=self.config.max_retries, what="verify",
                       progress=progress, restart_wait=self.config.restart_wait)

    def close(self) -> None:
        """Stop the actors (their verifiers first, so no sandbox server is left behind), then
        Ray itself if this executor started it."""
        import ray
        actors, self._actors = self._actors, []
        if actors and ray.is_initialized():
            try:
                ray.wait([a.close.remote() for a in actors], num_returns=len(actors),
                         timeout=10)
            except Exception:  # an actor that is dead already has no verifier to close
                pass
            for a in actors:
                ray.kill(a, no_restart=True)
        if self._started and ray.is_initialized():
            ray.shutdown()
        self._started = False


def refused_while_restarting(error) -> bool:
    """Whether a task failed because its actor was restarting when it was sent, so that it
    never reached the actor: Ray fails such a task (after a short grace) with
    `ActorUnavailableError` "... The actor is restarting" instead of queueing it, since our
    actors allow no task retries. A task that was in the actor when it died fails with
    "Socket closed" or `ActorDiedError` instead. Ray says which only in the message; should a
    later Ray word it otherwise, the refusal counts as a death, as it did before."""
    import ray
    return (isinstance(error, ray.exceptions.ActorUnavailableError)
            and "actor is restarting" in str(error))


def wait_until_ready(actor, what: str, seconds: float = RESTART_WAIT_SECONDS) -> None:
    """Return once `actor` answers (it restarted), or at once if it is gone for good (the next
    send then fails and counts); SelfplayError if it stays away past `seconds`.

    A restarting actor does not queue the question: Ray answers it "unavailable" after a
    grace of a second or two, so it is asked again, with backoff, until the deadline. On a
    loaded node a restart (a new process, its imports, a sandbox server or a model) takes
    longer than several of those graces."""
    import time

    import ray

    deadline = time.monotonic() + seconds
    pause = _POLL_FIRST
    while time.monotonic() < deadline:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=max(0.0, deadline - time.monotonic()))
            return
        except ray.exceptions.GetTimeoutError:
            break
        except ray.exceptions.ActorUnavailableError:  # restarting, or unreachable for now
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(2 * pause, _POLL_MOST)
        except ray.exceptions.RayActorError:  # dead for good: no restart to wait for
            return
    raise SelfplayError(f"{what}: its Ray actor did not come back within {seconds:g} s "
                        f"(executor.restart_wait); the chunks already written stay, "
                        f"`selfplay resume` retries the rest")


def fan_out(actors: list, submit: Callable, n: int, *, max_retries: int, what: str,
            progress: bool = False, window: int = 0,
            restart_wait: float = RESTART_WAIT_SECONDS) -> Iterator:
    """Chunks 0..n-1 run on `actors`, IN_FLIGHT at a time on each (`submit(actor, i)` starts
    chunk i on one and returns its ObjectRef); yields `(i, result)` as chunks come back. A
    chunk whose actor died is sent again, once the actor is back (waiting up to
    `restart_wait` seconds), up to `max_retries` times; a chunk the actor refused because it
    was still restarting waits and is sent again without using a retry. `window` > 0 starts no
    chunk that many or more past the lowest one not back yet: what `in_order` holds back
    (and a crash loses) stays bounded while one chunk is retried or slow."""
    import ray
    from tqdm import tqdm

    queue = collections.deque(range(n))  # ascending, a retried chunk back at the front
    failures = [0] * n
    load = [0] * len(actors)
    in_flight: dict = {}  # ObjectRef -> (chunk index, actor index)
    bar = tqdm(total=n, disable=not progress, desc=f"{what} (ray)", unit="chunk")

    def may_start(i: int) -> bool:
        lowest = min([i, *(j for j, _ in in_flight.values())])
        return not window or i < lowest + window

    try:
        while queue or in_flight:
            while queue and min(load) < IN_FLIGHT and may_start(queue[0]):
                a = load.index(min(load))
                i = queue.popleft()
                in_flight[submit(actors[a], i)] = (i, a)
                load[a] += 1
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            i, a = in_flight.pop(ref)
            load[a] -= 1
            try:
                result = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                # The actor died (or is unreachable) with this chunk in it: nothing of the
                # chunk was yielded, so sending it again cannot duplicate a row. A chunk
                # refused by an actor still restarting never ran: that is no death of its.
                if not refused_while_restarting(e):
                    failures[i] += 1
                if failures[i] > max_retries:
                    raise SelfplayError(
                        f"{what} chunk {i}: its Ray actor died {failures[i]} times "
                        f"(executor.max_retries = {max_retries}); the chunks "
                        f"already written stay, `selfplay resume` retries the rest. Last "
                        f"error: {e}") from None
                # A restarted actor reloads a model, which can take long on a loaded node; a
                # chunk sent before it answers fails at once ("unavailable"), and a few such
                # sends would use up max_retries without the actor ever dying again.
                wait_until_ready(actors[a], f"{what} chunk {i}", restart_wait)
                queue.appendleft(i)
                continue
            except ray.exceptions.RayTaskError as e:
                # The actor lives and refused the chunk (e.g. its node lacks the model): the
                # same everywhere, so no retry; the reason without Ray's whole traceback.
                if isinstance(e.cause, SelfplayError):
                    raise SelfplayError(f"{what} chunk {i} on Ray: {e.cause}") from None
                raise
            bar.update(1)
            yield i, result
    finally:
        bar.close()
        # Stopped early (an error, the caller gave up): drop what is queued, best effort;
        # nothing of it reaches the store, and the caller's close() stops the actors anyway.
        for ref in in_flight:
            try:
                ray.cancel(ref, force=False)
            except Exception:
                pass


def in_order(results: Iterator) -> Iterator:
    """`(i, result)` pairs that come in any order, yielded by i (0, 1, 2, ...): each held
    back until every lower chunk came, so the rows written are those of a local run, in
    the same order."""
    held: dict = {}
    next_i = 0
    for i, result in results:
        held[i] = result
        while next_i in held:
            yield next_i, held.pop(next_i)
            next_i += 1


def diagnose_on_ray(executor_config, verifier: VerifierConfig):
    """`sandbox.doctor.diagnose` run inside one Ray task, as a verify actor would see the
    machine: (node name, layers, canaries). Strict mode refuses there as it does here."""
    import ray
    started = connect(executor_config.address)
    try:
        config = dataclasses.replace(verifier,
                                     workers=verifier.workers or executor_config.actor_cpus)
        task = ray.remote(_diagnose_here).options(num_cpus=executor_config.actor_cpus,
                                                  max_retries=0)
        node, layers, canaries, error = ray.get(task.remote(config))
    finally:
        if started:
            ray.shutdown()
    if error:
        raise SelfplayError(f"on Ray node {node}: {error}")
    return node, layers, canaries


def _diagnose_here(config: VerifierConfig):
    import socket

    from sandbox.doctor import diagnose
    try:
        layers, canaries = diagnose(config)
    except SelfplayError as e:  # e.g. strict mode: sent back as text, raised by the driver
        return socket.gethostname(), [], [], str(e)
    return socket.gethostname(), layers, canaries, ""
