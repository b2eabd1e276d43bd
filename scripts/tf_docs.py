"""Generate the inputs/outputs tables of every Terraform module's README.

For the root module and every module under ``modules/``, the variables and outputs declared in the
module's ``*.tf`` files are rendered as two Markdown tables and written into the module's
``README.md`` between ``<!-- BEGIN_TF_DOCS -->`` and ``<!-- END_TF_DOCS -->``. Everything outside the
markers is written by people and kept as it is. A module without a README gets one with a title; a
README without markers gets the generated block appended.

    python scripts/tf_docs.py            # rewrite what is out of date
    python scripts/tf_docs.py --check    # exit 1 listing the READMEs that are out of date

The HCL is parsed by python-hcl2, so nested types, ``optional()`` attributes, heredoc descriptions
and escapes come out as Terraform reads them rather than as a regular expression guesses them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2

BEGIN = "<!-- BEGIN_TF_DOCS -->"
END = "<!-- END_TF_DOCS -->"

ROOT = Path(__file__).resolve().parent.parent

# Keep string literals in their source form (quoted, heredocs as written): python-hcl2's own
# unquoting leaves escapes inside converted heredocs undecoded, and only the source form tells a
# string literal apart from an expression.
_HCL_OPTIONS = hcl2.SerializationOptions(
    with_comments=False,
    explicit_blocks=False,
    preserve_heredocs=True,
    strip_string_quotes=False,
)

_MISSING = object()


class DocsError(Exception):
    """A module or README the generator cannot handle; the message names the file."""


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    description: str
    default: Any  # _MISSING when the variable has no default, i.e. is required
    sensitive: bool

    @property
    def required(self) -> bool:
        return self.default is _MISSING


@dataclass(frozen=True)
class Output:
    name: str
    description: str
    sensitive: bool


# --- HCL literals -------------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))", re.DOTALL)
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _unescape_template(text: str) -> str:
    # `$${` and `%%{` are how HCL spells a literal `${` / `%{` inside a string or heredoc.
    return text.replace("$${", "${").replace("%%{", "%{")


def _decode_quoted(source: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(1) or match.group(2):
            return chr(int(match.group(1) or match.group(2), 16))
        char = match.group(3)
        if char not in _SIMPLE_ESCAPES:
            raise DocsError(f"unsupported escape \\{char} in {source}")
        return _SIMPLE_ESCAPES[char]

    return _unescape_template(_ESCAPE.sub(replace, source[1:-1]))


def _decode_heredoc(source: str) -> str:
    lines = source.split("\n")
    opener, body = lines[0], lines[1:-1]
    if opener.startswith("<<-"):
        # Indented heredoc: Terraform removes the indentation of the least indented line.
        indents = [len(line) - len(line.lstrip()) for line in body if line.strip()]
        strip = min(indents, default=0)
        body = [line[strip:] for line in body]
    return _unescape_template("\n".join(body))


def _is_string_literal(value: str) -> bool:
    return len(value) >= 2 and value.startswith('"') and value.endswith('"')


def _decode_string(value: str) -> str:
    if not _is_string_literal(value):
        return value
    inner = value[1:-1]
    # python-hcl2 hands a heredoc back wrapped in quotes but otherwise verbatim (inner quotes not
    # escaped). A quoted string cannot span lines, so a leading `<<` plus a newline is a heredoc.
    if inner.startswith("<<") and "\n" in inner:
        return _decode_heredoc(inner)
    return _decode_quoted(value)


def _literal(value: Any) -> Any:
    """Turn python-hcl2's source-form value into the Python value Terraform would see."""
    if isinstance(value, str):
        return _decode_string(value)
    if isinstance(value, list):
        return [_literal(item) for item in value]
    if isinstance(value, dict):
        return {_decode_string(key): _literal(item) for key, item in value.items()}
    return value


def _expression(value: Any) -> str:
    # Types and other expressions come back wrapped in `${...}` when they are not a bare keyword.
    text = str(value)
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1]
    return text


def _text(value: Any, what: str) -> str:
    if isinstance(value, str) and _is_string_literal(value):
        return _decode_string(value)
    raise DocsError(f"{what} must be a string literal, got {value!r}")


# --- reading a module ---------------------------------------------------------------------------


def _blocks(data: dict[str, Any], kind: str) -> list[tuple[str, dict[str, Any]]]:
    blocks: list[tuple[str, dict[str, Any]]] = []
    for entry in data.get(kind, []):
        for label, body in entry.items():
            blocks.append((_decode_string(label), body or {}))
    return blocks


def read_module(directory: Path) -> tuple[list[Variable], list[Output]]:
    variables: list[Variable] = []
    outputs: list[Output] = []
    for path in sorted(directory.glob("*.tf")):
        try:
            with path.open(encoding="utf-8") as handle:
                data = hcl2.load(handle, serialization_options=_HCL_OPTIONS)
        except Exception as exc:  # python-hcl2 raises lark's many error types
            raise DocsError(f"{path}: cannot parse HCL: {exc}") from exc
        for name, body in _blocks(data, "variable"):
            where = f"{path}: variable {name!r}"
            variables.append(
                Variable(
                    name=name,
                    type=_expression(body["type"]) if "type" in body else "any",
                    description=_text(body["description"], f"{where} description") if "description" in body else "",
                    default=_literal(body["default"]) if "default" in body else _MISSING,
                    sensitive=body.get("sensitive") is True,
                )
            )
        for name, body in _blocks(data, "output"):
            where = f"{path}: output {name!r}"
            outputs.append(
                Output(
                    name=name,
                    description=_text(body["description"], f"{where} description") if "description" in body else "",
                    sensitive=body.get("sensitive") is True,
                )
            )
    return variables, outputs


# --- rendering ----------------------------------------------------------------------------------

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")


def _cell(text: str) -> str:
    """One Markdown table cell from free text: pipes escaped, line structure kept readable.

    A table cell cannot hold a newline. Hard-wrapped prose is joined with spaces (as Markdown
    itself would render it), blank lines become paragraph breaks and list items keep their own
    line, so a heredoc description reads the same in the table as in the source.
    """
    paragraphs = re.split(r"\n\s*\n", text.strip())
    rendered: list[str] = []
    for paragraph in paragraphs:
        out = ""
        for line in paragraph.split("\n"):
            line = line.strip()
            if not out:
                out = line
            elif _LIST_ITEM.match(line):
                out += "<br>" + line
            else:
                out += " " + line
        rendered.append(out)
    return "<br><br>".join(rendered).replace("|", "\\|")


def _code(text: str) -> str:
    # Backticks inside the text need a longer fence; pipes must be escaped even in code spans.
    fence = "``" if "`" in text else "`"
    pad = " " if "`" in text else ""
    return f"{fence}{pad}{text}{pad}{fence}".replace("|", "\\|")


def _render_default(value: Any) -> str:
    # JSON is also valid HCL for every literal a variable default can hold.
    return _code(json.dumps(value, ensure_ascii=False))


def _described(description: str, sensitive: bool) -> str:
    cell = _cell(description)
    if sensitive:
        cell = f"{cell} *Sensitive.*".strip()
    return cell


def render(variables: list[Variable], outputs: list[Output]) -> str:
    lines = [BEGIN, "## Inputs", ""]
    if variables:
        lines += [
            "| Name | Type | Default | Required | Description |",
            "|------|------|---------|:--------:|-------------|",
        ]
        # Required inputs first: they are what a caller must write.
        for var in sorted(variables, key=lambda v: (not v.required, v.name)):
            default = "n/a" if var.required else _render_default(var.default)
            required = "yes" if var.required else "no"
            row = [_code(var.name), _code(var.type), default, required, _described(var.description, var.sensitive)]
            lines.append("| " + " | ".join(row) + " |")
    else:
        lines.append("No inputs.")
    lines += ["", "## Outputs", ""]
    if outputs:
        lines += ["| Name | Description |", "|------|-------------|"]
        for out in sorted(outputs, key=lambda o: o.name):
            lines.append(f"| {_code(out.name)} | {_described(out.description, out.sensitive)} |")
    else:
        lines.append("No outputs.")
    lines.append(END)
    return "\n".join(lines)


def updated_readme(current: str | None, block: str, title: str, readme: Path) -> str:
    if current is None:
        return f"# {title}\n\n{block}\n"
    begins, ends = current.count(BEGIN), current.count(END)
    if begins == 0 and ends == 0:
        return current.rstrip("\n") + "\n\n" + block + "\n"
    start, stop = current.find(BEGIN), current.find(END)
    if begins != 1 or ends != 1 or stop < start:
        raise DocsError(f"{readme}: expected exactly one {BEGIN} followed by one {END}")
    return current[:start] + block + current[stop + len(END) :]


# --- modules ------------------------------------------------------------------------------------


def module_dirs(root: Path) -> list[Path]:
    """The root module (once it has .tf files) and every module under modules/."""
    candidates = [root, *sorted(p for p in (root / "modules").glob("*") if p.is_dir())]
    return [d for d in candidates if any(d.glob("*.tf"))]


def _title(directory: Path, root: Path) -> str:
    if directory == root:
        return directory.name
    return f"Module `{directory.name}`"


def sync(directories: list[Path], root: Path, check: bool) -> list[Path]:
    """Bring each module's README up to date (or, in check mode, only report); returns the stale ones."""
    stale: list[Path] = []
    for directory in directories:
        variables, outputs = read_module(directory)
        readme = directory / "README.md"
        current = readme.read_text(encoding="utf-8") if readme.exists() else None
        wanted = updated_readme(current, render(variables, outputs), _title(directory, root), readme)
        if wanted == current:
            continue
        stale.append(readme)
        if not check:
            readme.write_text(wanted, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a README is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    parser.add_argument("modules", nargs="*", type=Path, help="module directories (default: root + modules/*)")
    args = parser.parse_args(argv)
    root: Path = args.root.resolve()
    directories = [m.resolve() for m in args.modules] or module_dirs(root)
    try:
        stale = sync(directories, root, check=args.check)
    except DocsError as exc:
        print(f"tf_docs: {exc}", file=sys.stderr)
        return 2
    for readme in stale:
        verb = "out of date" if args.check else "updated"
        print(f"{verb}: {readme.relative_to(root) if readme.is_relative_to(root) else readme}")
    if args.check and stale:
        print("run `make docs` to regenerate the module READMEs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
