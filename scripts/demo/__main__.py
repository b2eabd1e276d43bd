"""`python -m scripts.demo` (`make demo`, `make demo-down`): see the package's docstring."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

if __package__ in (None, ""):  # `python scripts/demo`: the repository root is not on the path yet
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import scripts.demo
from scripts.demo.environment import Demo, demo_environment
from scripts.demo.pipelines import PIPELINES, drive_all, prepare_all
from scripts.demo.processes import DEFAULT_RUN_DIR, stop_stale_run
from scripts.demo.report import format_report


def keep_running_help(demo: Demo) -> str:
    pg = demo.databases.postgres
    py = ".venv/bin/python"
    return f"""
Everything stays up until Ctrl-C.
  AWS (moto):   {demo.endpoint}    e.g. AWS_ENDPOINT_URL={demo.endpoint} aws s3 ls
  PostgreSQL:   psql "{pg.dsn()}"
  Terraform:    {demo.terraform_dir} (state there; function logs in {demo.run_dir / "logs"})
Send your own events:
  upload a file:     AWS_ENDPOINT_URL={demo.endpoint} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \\
                     aws s3 cp my.csv s3://<file loader bucket>/sales/my.csv
  invoke directly:   {py} scripts/invoke_local.py table_sync --demo --event my-event.json
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description=scripts.demo.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--keep", action="store_true", help="leave everything running until Ctrl-C")
    parser.add_argument("--small", action="store_true", help="small sample data (what make test runs)")
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    parser.add_argument("--down", action="store_true", help="only clean up what a previous run left behind")
    parser.add_argument("--no-drive", action="store_true", help="bring everything up but send no sample data")
    parser.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.down:
        stop_stale_run(args.run_dir)
        return 0
    started = time.monotonic()
    try:
        with demo_environment(args.run_dir, args.small, PIPELINES, prepare_all) as demo:
            reports = [] if args.no_drive else drive_all(demo)
            print(format_report(reports, demo, time.monotonic() - started), flush=True)
            if args.report_json:
                args.report_json.write_text(json.dumps([asdict(report) for report in reports], indent=2))
            if args.keep:
                print(keep_running_help(demo), flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    signal.pause()
            failed = [report.pipeline for report in reports if not report.ok]
    finally:
        shutil.rmtree(args.run_dir, ignore_errors=True)
    if failed:
        print(f"checks failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
