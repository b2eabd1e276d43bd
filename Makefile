# Entry points. `make help` lists them; the README explains each.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
PY         := $(CURDIR)/$(VENV)/bin/python
BUILD_DIR  ?= build
RUNTIME    ?= python3.12
ARCH       ?= x86_64
ENV        ?= dev
PYTEST_ARGS ?=
PACKAGE_ARGS ?=

# Terraform: the binary on PATH with a project-local CLI config that installs the hashicorp
# providers from a filesystem mirror when this machine has one (see scripts/terraform_cli_config.sh).
TERRAFORM  ?= terraform
export TF_CLI_CONFIG_FILE := $(CURDIR)/.terraform-cli/terraformrc
export TF_IN_AUTOMATION := 1

.PHONY: help setup system-packages package test tf-check lint fmt bench clean plan apply tflocal-apply docs demo demo-down

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: system-packages $(VENV)/.installed $(TF_CLI_CONFIG_FILE) ## Install system packages (as root), the pinned .venv and the Terraform CLI config

system-packages:
	@scripts/setup_system.sh

$(VENV)/.installed: requirements-dev.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	@touch $@

$(TF_CLI_CONFIG_FILE): scripts/terraform_cli_config.sh
	@scripts/terraform_cli_config.sh $@ >/dev/null

package: setup ## Build one reproducible zip per function + the ODBC layer under $(BUILD_DIR)/ (RUNTIME=, ARCH=)
	$(PY) scripts/package.py --build-dir $(BUILD_DIR) --runtime $(RUNTIME) --arch $(ARCH) $(PACKAGE_ARGS)

test: setup package ## Run every test: unit, real databases, moto, Terraform (validate, plan, checkov, apply)
	$(PY) -m pytest $(PYTEST_ARGS)

tf-check: setup package ## Terraform checks only: fmt, validate, plan per environment, checkov, apply to moto
	$(PY) -m pytest tests/terraform $(PYTEST_ARGS)

lint: setup ## ruff and terraform fmt -check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(TERRAFORM) fmt -check -recursive

fmt: setup ## Format Python (ruff) and Terraform
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	$(TERRAFORM) fmt -recursive

docs: setup ## Regenerate module READMEs' input/output tables
	$(PY) scripts/tf_docs.py

bench: setup package ## Run the pipeline benchmarks (BENCH=name for one); each prints a ratio against a baseline measured in the same run
	PYTHONPATH=lambda_src $(PY) -m scripts.bench $(BENCH)

demo: setup ## Every pipeline end to end on this machine: moto + local PostgreSQL + terraform apply + event router (KEEP=1 leaves it up)
	$(PY) scripts/demo.py $(if $(KEEP),--keep)

demo-down: ## Stop and remove what a killed `make demo` left in build/demo
	$(PY) scripts/demo.py --down

clean: ## Remove build output, Terraform working directories and caches (keeps .venv)
	rm -rf $(BUILD_DIR) .terraform-cli .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name .terraform -o -name __pycache__ \) -type d -print0 | xargs -0 rm -rf
	find . -path ./$(VENV) -prune -o \( -name .terraform.lock.hcl -o -name 'terraform.tfstate*' \) -type f -print0 | xargs -0 rm -f
