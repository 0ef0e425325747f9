"""`selfplay doctor`: which sandbox isolation layers are active on this machine, and why not.

With a run (`selfplay doctor DIR`) it checks that run's sandbox settings (strict mode refuses as
the run would); when the run verifies on Ray (`executor.kind = "ray"`) the probe runs inside a
Ray task, so the layers reported are those a verify actor gets, on its node and with its
privileges, not this machine's."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("doctor", help="show which sandbox isolation layers are active")
    parser.add_argument("dir", nargs="?",
                        help="a run directory (or its config.toml): check with its sandbox "
                             "and executor settings (default: the sandbox's defaults, here)")
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from sandbox.doctor import diagnose

    if args.dir is None:
        layers, canaries = diagnose()
        where = "this machine"
    else:
        config = _load(args.dir)
        if config.executor.kind == "ray":
            from selfplay.compute.executors import diagnose_on_ray
            node, layers, canaries = diagnose_on_ray(config.executor, config.verifier)
            where = f"a Ray worker on node {node}"
        else:
            layers, canaries = diagnose(config.verifier)
            where = "this machine"
    print(f"sandbox isolation layers ({where}):")
    for f in layers:
        mark = "active  " if f.ok else "INACTIVE" if f.name != "landlock_partial" else "partial "
        print(f"  {mark} {f.name:<16} {f.detail}")
    print("canary checks:")
    for f in canaries:
        print(f"  {'ok    ' if f.ok else 'FAILED'} {f.name:<38} {f.detail}")
    return 0 if all(f.ok for f in canaries) else 1


def _load(path: str):
    from pathlib import Path

    from selfplay.config import load_config
    path = Path(path)
    return load_config(path / "config.toml" if path.is_dir() else path)
