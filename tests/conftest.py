"""Shared test helpers."""
import re

import pytest


@pytest.fixture
def cli_error(capsys):
    """Run a CLI ``main(argv)`` that must fail on bad input: exit status 2 and exactly one stderr
    line matching ``pattern`` (the problem and the fix), no traceback. Returns that line."""
    def run(main, argv: list[str], pattern: str) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert re.search(pattern, lines[0]), lines[0]
        return lines[0]
    return run
