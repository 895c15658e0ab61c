"""Package layout only; all metadata is in pyproject.toml.

Every package under gancompress/ is discovered (never listed by hand, so a new sub-package cannot
be left out of the wheel), and the top-level `pretrained/` folder ships inside the package as
`gancompress.pretrained`, so a non-editable install still finds the teacher manifest."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["gancompress", "gancompress.*"]) + ["gancompress.pretrained"],
    package_dir={"gancompress.pretrained": "pretrained"},
    package_data={"gancompress.pretrained": ["*.json", "*.safetensors", "*.md"]},
)
