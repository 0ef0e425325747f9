"""`selfplay doctor`: which sandbox isolation layers are active on this machine, and why not."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("doctor", help="show which sandbox isolation layers are active")
    parser.set_defaults(func=cmd_doctor)


def cmd_doctor(args) -> int:
    from sandbox.doctor import diagnose

    layers, canaries = diagnose()
    print("sandbox isolation layers:")
    for f in layers:
        mark = "active  " if f.ok else "INACTIVE" if f.name != "landlock_partial" else "partial "
        print(f"  {mark} {f.name:<16} {f.detail}")
    print("canary checks:")
    for f in canaries:
        print(f"  {'ok    ' if f.ok else 'FAILED'} {f.name:<38} {f.detail}")
    return 0 if all(f.ok for f in canaries) else 1
