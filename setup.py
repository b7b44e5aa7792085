"""Builds the optional C accelerator of the state tree (isoperp.tree._fastmerkle).

Everything else is declared in pyproject.toml. The extension is optional: without a C compiler
(or if it fails to build) the install still succeeds and isoperp.tree.merkle uses its pure-Python
flush and hashing.py uses safe-pysha3.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "isoperp.tree._fastmerkle",
            sources=["operator/isoperp/tree/_fastmerkle.c"],
            optional=True,
        )
    ]
)
