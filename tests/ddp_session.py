"""One process of a two-process DDP session that runs a list of makemore_pl commands.

    LOCAL_RANK=0|1 NODE_RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=P \\
        python tests/ddp_session.py plan.json

Both processes are started by the test, as torchrun or a cluster starts them, and run each
command of the plan with `cli.main`, as `python -m makemore_pl` does in every process of such a
launch. The two processes start once and join one process group for every command: the tests
of tests/test_devices.py pay Python's and Lightning's start-up once instead of once a command.

plan.json is a list of {"args": [...], "cwd": folder, "stdout": file}; file.0 and file.1
receive each process's standard output.
"""

import contextlib
import json
import os
import sys

import torch

from makemore_pl.cli.main import main

LAUNCH = dict(os.environ)  # what the launcher set: Lightning removes WORLD_SIZE after each run


def run(command: dict) -> None:
    os.environ.update(LAUNCH)
    os.chdir(command["cwd"])
    rank = os.environ["LOCAL_RANK"]
    with open(f"{command['stdout']}.{rank}", "w") as out, contextlib.redirect_stdout(out):
        main(command["args"])


if __name__ == "__main__":
    for command in json.loads(open(sys.argv[1]).read()):
        run(command)
    if torch.distributed.is_initialized():  # gloo's threads end before the interpreter does
        torch.distributed.destroy_process_group()
