"""The module's Terraform code applied to moto, from a copy under the run directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.demo.processes import CACHE_DIR, REGION, REPO_ROOT
from scripts.localenv.moto_provider import write_provider_override


class Terraform:
    """The module's Terraform code copied to `directory` with a provider aimed at moto."""

    def __init__(self, directory: Path, endpoint: str) -> None:
        self.directory = directory
        self.endpoint = endpoint
        self.environment = {
            **os.environ,
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            self.environment.pop(name, None)
        cli_config = REPO_ROOT / ".terraform-cli" / "terraformrc"
        # An inherited config that is not there would send `terraform init` to the registry.
        if not Path(self.environment.get("TF_CLI_CONFIG_FILE", "")).is_file() and cli_config.exists():
            self.environment["TF_CLI_CONFIG_FILE"] = str(cli_config)
        # Providers are large; a plugin cache outside the run directory makes init a link, not a copy.
        plugin_cache = CACHE_DIR / "terraform-plugins"
        plugin_cache.mkdir(parents=True, exist_ok=True)
        self.environment["TF_PLUGIN_CACHE_DIR"] = str(plugin_cache)

    def prepare(self) -> None:
        self.directory.mkdir(parents=True)
        for path in REPO_ROOT.glob("*.tf"):
            shutil.copy2(path, self.directory / path.name)
        shutil.copytree(
            REPO_ROOT / "modules",
            self.directory / "modules",
            ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
        )
        write_provider_override(
            self.directory,
            self.endpoint,
            REGION,
            filename="demo_provider.tf",
            static_credentials=True,
            skip_requesting_account_id=True,
        )

    def run(self, *args: str, log_name: str) -> str:
        """Run terraform with its output streamed to a log in the run directory (follow it there)."""
        argv = ["terraform", f"-chdir={self.directory}", *args]
        log_path = self.directory.parent / f"terraform-{log_name}.log"
        with open(log_path, "w") as log_file:
            result = (
                subprocess.run(
                    argv, stdout=subprocess.PIPE, stderr=log_file, text=True, env=self.environment, check=False
                )
                if log_name == "show"
                else subprocess.run(
                    argv, stdout=log_file, stderr=subprocess.STDOUT, text=True, env=self.environment, check=False
                )
            )
        if result.returncode != 0:
            tail = log_path.read_text()[-6000:]
            raise RuntimeError(f"terraform {args[0]} failed ({result.returncode}), see {log_path}:\n{tail}")
        return result.stdout or ""

    def apply(self, variables: Mapping[str, str]) -> None:
        self.run("init", "-input=false", "-no-color", log_name="init")
        flags = [f"-var={name}={value}" for name, value in variables.items()]
        var_file = REPO_ROOT / "environments" / "local.tfvars"
        self.run(
            "apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={var_file}", *flags, log_name="apply"
        )

    def show(self) -> dict[str, Any]:
        return json.loads(self.run("show", "-json", "-no-color", log_name="show"))
