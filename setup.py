"""Build hook (pyproject.toml holds the rest): the train configs live at the top of the source tree, in configs/,
where users read and edit them; a wheel carries a copy as mmfer/configs, so that an installed mmfer finds them by
name (``mmfer train c3d.yaml ...``; mmfer.engine.config.find_config)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def copy_configs(build_lib: str | Path, *, source: Path = HERE / "configs") -> list[Path]:
    """Copy ``source``'s YAML configs into ``build_lib``/mmfer/configs; returns the files written."""
    target = Path(build_lib) / "mmfer" / "configs"
    shutil.rmtree(target, ignore_errors=True)  # a config renamed or removed since the last build goes too
    target.mkdir(parents=True)
    written = []
    for path in sorted(source.glob("*.yaml")):
        (target / path.name).write_bytes(path.read_bytes())
        written.append(target / path.name)
    return written


class BuildPyWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the checkout's configs/ itself
            copy_configs(self.build_lib)


if __name__ == "__main__":
    setup(cmdclass={"build_py": BuildPyWithConfigs})
