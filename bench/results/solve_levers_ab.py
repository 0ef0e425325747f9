"""A/B of solve-prompt levers on the base model: solve rate on train puzzles and heldout."""
import zlib, random, sys, time, shutil, dataclasses
from pathlib import Path
from puzzles.store import Store
from selfplay.compute.attempts import PuzzleProblem, train_puzzles_with_shortest_solution
from selfplay.evaluation.evaluate import evaluate
from selfplay.evaluation.evalsets import load_eval_set
from selfplay.config import preset
from training.models import load_model
from training.settings import ModelConfig, SamplingConfig
from sandbox import Verifier, VerifierConfig

src = Path(sys.argv[1]); choices = sys.argv[2].split(","); dtype = sys.argv[3]
n_gen, n_seed, n = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
adapter = sys.argv[7] if len(sys.argv) > 7 else None
shutil.copy(src / "store.sqlite", "/tmp/ab/store.sqlite")
store = Store("/tmp/ab/store.sqlite")
cfg = preset("cpu")
train = store.puzzles(split="train")
rng = random.Random(0)
gen = [sp for sp in train if sp.origin == "generator"]; seed = [sp for sp in train if sp.origin == "seed"]
rng.shuffle(gen); rng.shuffle(seed)
problems = {"generator": [PuzzleProblem(sp.puzzle) for sp in gen[:n_gen]],
            "seed": [PuzzleProblem(sp.puzzle) for sp in seed[:n_seed]],
            "heldout": load_eval_set("heldout", store, max_problems=0, seed=0).problems}
examples = train_puzzles_with_shortest_solution(store, human_only=True)
loaded = load_model(ModelConfig(name="smollm2-135m", adapter=adapter or ""))
verifier = Verifier(VerifierConfig())
samp = SamplingConfig(temperature=0.8, top_p=0.95, max_new_tokens=128, batch_size=64, dtype=dtype)
for choice in choices:
    pc = dataclasses.replace(cfg.prompts, example_choice=choice)
    for name, probs in problems.items():
        t = time.time()
        r = evaluate(loaded, probs, examples, verifier, set_name=name, n=n, ks=[1, n], sampling=samp,
                     prompt_config=pc, seed=lambda *a: zlib.crc32(str(a).encode()), round=0)
        verd = {}
        for a in r.attempts: verd[a.verdict] = verd.get(a.verdict, 0) + 1
        print(f"{choice:8s} {dtype:9s} {name:10s} problems={r.problems} solved={r.solved} passes={verd.get('pass',0)}/{len(r.attempts)} pass@k={r.pass_at_k} verdicts={verd} {time.time()-t:.0f}s", flush=True)
verifier.close()
