"""Process start-up: the CLI parser and ``--help`` load no model library (issue 15 item 5).

``tunesift --help`` imported torch through ``tunesift.methods`` (GOT-D's solver) only to list the
method names: 3.9 of its 5.7 s on a busy 2-core machine. The methods now load on first use of
``METHODS``; docs/benchmarks.md has the timings.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "sentence_transformers", "onnxruntime", "scipy", "matplotlib")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return out.split()


def test_building_the_cli_parser_imports_no_model_library():
    assert _loaded_after("import tunesift.cli.main as m\nm.build_parser()") == []


def test_importing_the_api_does_not_import_torch():
    # torch loads when a method runs (GOT-D's solver), not when the package is imported
    assert "torch" not in _loaded_after("import tunesift, tunesift.api")


def test_method_names_are_the_methods():
    from tunesift.methods import METHODS, NAMES

    assert tuple(METHODS) == NAMES
