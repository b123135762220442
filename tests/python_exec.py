"""The Python language host's executor, as `pulumi preview`/`up` run a Python program.

The Pulumi CLI's Python language plugin (pulumi-language-python, not on PyPI and not
installable here) runs a program by starting this executor in the project's virtualenv:
`python pulumi-language-python-exec --monitor ADDR --engine ADDR --project P --stack S
--pwd DIR --dry_run true|false --parallel N ENTRYPOINT`, with the stack's config as JSON in
PULUMI_CONFIG and the secret keys in PULUMI_CONFIG_SECRET_KEYS. This file follows the upstream
executor (sdk/python/cmd/pulumi-language-python-exec) step for step: the config from the
environment, the runtime settings, `run_in_stack(runpy.run_path(...))`, a `pulumi.RunError`
logged as one error and any other exception logged with its traceback, both exiting 1; a
SystemExit is not caught, so it ends the process with its own status. tests/language_host.py
starts it and reads its exit status as the language host does.
"""

import argparse
import asyncio
import logging
import os
import runpy
import sys
import traceback

import pulumi
import pulumi.runtime

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Execute a Pulumi Python program")
    ap.add_argument("--project")
    ap.add_argument("--stack")
    ap.add_argument("--parallel")
    ap.add_argument("--dry_run")
    ap.add_argument("--pwd")
    ap.add_argument("--monitor")
    ap.add_argument("--engine")
    ap.add_argument("--tracing")
    ap.add_argument("--organization")
    ap.add_argument("PROGRAM")
    ap.add_argument("ARGS", nargs="*")
    args = ap.parse_args()

    pulumi.runtime.set_all_config(pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env())
    pulumi.runtime.configure(pulumi.runtime.Settings(
        monitor=args.monitor, engine=args.engine, project=args.project, stack=args.stack,
        parallel=int(args.parallel), dry_run=args.dry_run == "true", organization=args.organization))

    sys.argv = [args.PROGRAM, *args.ARGS]
    if args.pwd is not None:
        os.chdir(args.pwd)

    successful = False
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        loop.run_until_complete(pulumi.runtime.run_in_stack(lambda: runpy.run_path(args.PROGRAM, run_name="__main__")))
        successful = True
    except pulumi.RunError as e:
        pulumi.log.error(str(e))
    except Exception:  # noqa: BLE001 - reported to the engine, as upstream does
        pulumi.log.error("Program failed with an unhandled exception:")
        pulumi.log.error(traceback.format_exc())
    finally:
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()
    sys.exit(0 if successful else 1)
