"""selfplay: the self-play loop and its command line.

The library API (the CLI is a thin layer over it):

    from selfplay.config import preset, load_config, RunConfig
    from selfplay.rundir import init_run
    from selfplay.loop import run, status, export
    from selfplay.evaluation.run_eval import eval_run
    from selfplay.reports.report import write_report

    init_run("runs/demo", preset("tiny"))
    run("runs/demo", rounds=2)
    print(status("runs/demo")["rounds"][-1]["funnel"])

Imports stay lazy here so that `selfplay --help` starts without loading torch.
"""
