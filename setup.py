"""Maps the top-level folders onto the `transferline` import package (see pyproject.toml)."""

from setuptools import find_packages, setup

ROOTS = {"transferline": "platform", "transferline.connectors": "connectors", "transferline.tasks": "tasks"}


def _packages() -> list[str]:
    names = []
    for prefix, folder in ROOTS.items():
        names.append(prefix)
        names += [f"{prefix}.{sub}" for sub in find_packages(folder)]
    return names


setup(packages=_packages(), package_dir=ROOTS)
