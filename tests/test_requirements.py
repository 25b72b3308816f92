"""requirements.txt (pip) and environment.yml (conda) must install the very same stack."""
from __future__ import annotations

import re
from pathlib import Path

import yaml  # PyYAML: a dependency of papermill and jupyter, so present wherever the course is

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)$")


def _canonical(name: str) -> str:
    """PEP 503 names: Pillow, pillow and py_yaml vs py-yaml compare equal."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines: list[str], where: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        assert match, f"{where}: {line!r} is not pinned as name==version"
        name = _canonical(match.group(1))
        assert name not in pins, f"{where}: {name} is listed twice"
        pins[name] = match.group(2)
    return pins


def requirements_pins() -> dict[str, str]:
    return parse_pins((ROOT / "requirements.txt").read_text().splitlines(), "requirements.txt")


def environment_pins() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml: expected one `pip:` list under dependencies"
    return parse_pins(pip_sections[0], "environment.yml (pip:)")


def test_parse_pins_rejects_loose_versions():
    assert parse_pins(["torch==2.14.1  # comment", "", "Pillow==13.0.0"], "x") == {"torch": "2.14.1", "pillow": "13.0.0"}
    for loose in ("torch>=2.1", "torch", "torch==2.1; python_version<'3.12'"):
        try:
            parse_pins([loose], "x")
        except AssertionError:
            continue
        raise AssertionError(f"{loose!r} was accepted as a pin")


def test_same_packages_and_versions():
    req, env = requirements_pins(), environment_pins()
    assert req, "requirements.txt pins nothing"
    only_req = {k: v for k, v in req.items() if k not in env}
    only_env = {k: v for k, v in env.items() if k not in req}
    differ = {k: (req[k], env[k]) for k in req.keys() & env.keys() if req[k] != env[k]}
    assert not only_req and not only_env and not differ, (
        f"requirements.txt and environment.yml disagree: only in requirements.txt {only_req}, "
        f"only in environment.yml {only_env}, different versions (txt, yml) {differ}")


def test_environment_yml_conda_part():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "pip" in conda and any(d.startswith("python=") for d in conda), conda
    assert env.get("name"), "environment.yml needs a name for `conda activate`"


def test_package_dependencies_are_pinned():
    """Every runtime dependency declared in pyproject.toml is in the pinned stack."""
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.M | re.S).group(1)
    names = {_canonical(re.split(r"[<>=!~; ]", d.strip().strip('"'))[0]) for d in deps.split(",") if d.strip()}
    assert names - requirements_pins().keys() == set()
