"""The install lock agrees with pyproject.toml, and this environment is what the lock installs."""

from pathlib import Path

from tools import lock


def test_the_lock_pins_every_dependency_pyproject_declares_at_a_version_it_allows():
    assert lock.disagreements(lock.requirements()) == []


def test_this_environment_holds_exactly_the_locked_versions_of_the_project_and_its_dependencies():
    # Installed by `make install` through the lock: any package the walk reaches that the lock
    # does not pin (an unpinned transitive dependency) would be resolved afresh on every install.
    assert lock.installed_mismatches() == []


def test_a_dependency_change_the_lock_does_not_follow_is_named(tmp_path: Path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "w2s"\ndependencies = ["numpy>=2", "pandas"]\n'
        '[project.optional-dependencies]\ntest = ["pytest>=8", "w2s[s3]"]\ns3 = ["dvc-s3"]\n'
    )
    reqs = lock.requirements(pyproject)
    assert sorted(r.name for r in reqs) == ["dvc-s3", "numpy", "pandas", "pytest"]  # the project's own extra expanded
    pins = tmp_path / "requirements.lock"
    pins.write_text(
        f"{lock.HEADER}{lock.fingerprint(reqs)}\nnumpy==2.1.0\npandas==2.2.0\npytest==8.0.0\ndvc-s3==3.2.0\n"
    )
    assert lock.disagreements(reqs, pins) == []

    pins.write_text(f"{lock.HEADER}{lock.fingerprint(reqs)}\nnumpy==1.26.0\npytest==8.0.0\ndvc-s3==3.2.0\n")
    assert lock.disagreements(reqs, pins) == [
        "pyproject.toml requires numpy>=2 but requirements.lock pins numpy==1.26.0",
        "pyproject.toml requires pandas but requirements.lock does not pin pandas",
    ]
    pyproject.write_text(pyproject.read_text().replace('"pandas"', '"pandas>=2.2"'))
    pins.write_text(
        f"{lock.HEADER}{lock.fingerprint(reqs)}\nnumpy==2.1.0\npandas==2.2.0\npytest==8.0.0\ndvc-s3==3.2.0\n"
    )
    assert lock.disagreements(lock.requirements(pyproject), pins) == [
        "the dependency lists in pyproject.toml changed since requirements.lock was made"
    ]
    assert lock.disagreements(reqs, tmp_path / "absent.lock") == ["absent.lock is missing: run `make lock`"]


def test_the_lock_pins_what_older_python_311_releases_also_install(tmp_path: Path):
    # A lock frozen on Python 3.11.7 lacks async-timeout, which redis and aiohttp require below
    # 3.11.3: an install on Debian 12's python3 (3.11.2) then held a package the lock did not pin.
    pip = tmp_path / "venv" / "bin" / "pip"
    pip.parent.mkdir(parents=True)
    pip.write_text("#!/bin/sh\nprintf 'torch==2.13.0+cpu\\nattrs==26.1.0\\naiohttp==3.14.5\\n'\n")
    pip.chmod(0o755)
    out = tmp_path / "requirements.lock"
    assert lock.write(tmp_path / "venv", out) == 0
    pins = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert pins == ["aiohttp==3.14.5", "async-timeout==5.0.1", "attrs==26.1.0", "torch==2.13.0"]
    assert "async-timeout==5.0.1" in (lock.ROOT / "requirements.lock").read_text().splitlines()
