"""The Dockerfile, .dockerignore and devcontainer of generated projects.

Fast tests lint and read the rendered files; the end-to-end tests build the
default project's images for real with podman (see images.py) and run the
pipeline, `make setup` and the tests inside them as the unprivileged user.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import images
import jsonc
import pytest
from support import PYTHON_VERSIONS, commit_all, git_init_commit, render, run, tool_env

REQUIRED_EXTENSIONS = {"ms-python.python", "charliermarsh.ruff", "iterative.dvc"}
HADOLINT = Path(sys.executable).with_name("hadolint")


def stages(dockerfile: str) -> list[tuple[str, str]]:
    """(base, name) of every stage, in order."""
    return re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)\s*$", dockerfile, flags=re.MULTILINE)


def stage_body(dockerfile: str, name: str) -> str:
    pattern = rf"^FROM\s+\S+\s+AS\s+{name}\s*$(.*?)(?=^FROM\s|\Z)"
    match = re.search(pattern, dockerfile, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no stage {name!r}"
    return match.group(1)


# ---------------------------------------------------------------- rendered files


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_dockerfile_passes_hadolint_at_warning_level(
    render_project: Callable[..., Path], python_version: str
) -> None:
    project = render_project(python_version=python_version)
    result = run([HADOLINT, "--failure-threshold", "warning", "Dockerfile"], project, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_rejects_a_dockerfile_that_breaks_its_rules(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:latest\nRUN cd /app && pip install x\n")
    result = run([HADOLINT, "--failure-threshold", "warning", "Dockerfile"], tmp_path, check=False)
    assert result.returncode != 0


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
def test_dockerfile_takes_python_from_the_answers_and_images_from_build_args(
    render_project: Callable[..., Path], python_version: str
) -> None:
    dockerfile = (render_project(python_version=python_version) / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)$", dockerfile, flags=re.MULTILINE))
    pinned_tag = rf"python:{re.escape(python_version)}\.\d+-slim-bookworm"
    assert re.fullmatch(pinned_tag, args["PYTHON_IMAGE"])
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"])
    assert args["PYTHON"] == f"python{python_version}"
    assert stages(dockerfile)[:2] == [("${UV_IMAGE}", "uv"), ("${PYTHON_IMAGE}", "base")]
    assert "UV_PYTHON=${PYTHON}" in dockerfile
    assert "UV_PYTHON_DOWNLOADS=never" in dockerfile


def test_dockerfile_installs_from_the_lock_with_bytecode_as_a_numeric_non_root_user(
    default_project: Path,
) -> None:
    dockerfile = (default_project / "Dockerfile").read_text()
    names = [name for _, name in stages(dockerfile)]
    assert names == ["uv", "base", "builder", "development", "runtime"]
    builder = stage_body(dockerfile, "builder")
    syncs = re.findall(r"uv sync [^\n]*", builder)
    assert syncs
    assert all("--locked" in sync for sync in syncs)
    assert "UV_COMPILE_BYTECODE=1" in builder
    uid = re.search(r"^ARG APP_UID=(\d+)$", dockerfile, flags=re.MULTILINE)
    assert uid
    assert int(uid.group(1)) > 0
    for target in ("development", "runtime"):
        users = re.findall(r"^USER\s+(\S+)$", stage_body(dockerfile, target), flags=re.MULTILINE)
        assert users[-1] == "${APP_UID}", target
    runtime = stage_body(dockerfile, "runtime")
    assert re.search(r'^CMD \["dvc", "repro"\]$', runtime, flags=re.MULTILINE)
    assert "make docker" in dockerfile.split("\nARG ", 1)[0], "the header documents how to build"


def test_make_docker_builds_the_dockerfile(default_project: Path) -> None:
    result = run(["make", "--dry-run", "docker"], default_project)
    assert shlex.split(result.stdout.strip()) == [
        "docker",
        "build",
        "--tag",
        "claims-fraud-detection:latest",
        ".",
    ]


def test_dockerignore_keeps_data_secrets_caches_and_git_out(default_project: Path) -> None:
    patterns = (default_project / ".dockerignore").read_text().split("\n")
    for pattern in (".git/", ".env", ".dvc/config.local", "data/**", "models/**", ".venv/"):
        assert pattern in patterns
    assert "!.env.example" in patterns


@pytest.mark.parametrize(
    ("use_docker", "use_devcontainer"), [(True, True), (True, False), (False, False)]
)
def test_container_files_follow_the_answers(
    render_project: Callable[..., Path], use_docker: bool, use_devcontainer: bool
) -> None:
    project = render_project(use_docker=use_docker, use_devcontainer=use_devcontainer)
    assert (project / "Dockerfile").is_file() is use_docker
    assert (project / ".dockerignore").is_file() is use_docker
    assert (project / ".devcontainer").exists() is use_devcontainer
    recipe = run(["make", "--dry-run", "docker"], project, check=False).stdout
    assert ("docker build" in recipe) is use_docker


def test_devcontainer_builds_the_development_target_and_runs_make_setup(
    default_project: Path,
) -> None:
    folder = default_project / ".devcontainer"
    config = jsonc.loads((folder / "devcontainer.json").read_text())
    assert isinstance(config, dict)
    assert config["name"] == "Claims Fraud Detection"
    build = config["build"]
    assert (folder / build["dockerfile"]).resolve() == (default_project / "Dockerfile").resolve()
    assert (folder / build["context"]).resolve() == default_project.resolve()
    dockerfile = (default_project / "Dockerfile").read_text()
    assert build["target"] in [name for _, name in stages(dockerfile)]
    assert config["postCreateCommand"] == "make setup"
    extensions = set(config["customizations"]["vscode"]["extensions"])
    assert extensions >= REQUIRED_EXTENSIONS


def test_devcontainer_name_survives_quotes_and_non_ascii_letters(
    render_project: Callable[..., Path],
) -> None:
    name = 'Détection "fraude": ß\\x'
    project = render_project(project_name=name, project_slug="detection-fraude")
    config = jsonc.loads((project / ".devcontainer" / "devcontainer.json").read_text())
    assert isinstance(config, dict)
    assert config["name"] == name


def test_jsonc_reader_keeps_comment_markers_inside_strings() -> None:
    text = '// top\n{"a": "http://x/*y*/", /* gone */ "b": [1] // end\n}'
    assert jsonc.loads(text) == {"a": "http://x/*y*/", "b": [1]}


# ---------------------------------------------------------------- real builds

E2E_ANSWERS = {"python_version": "3.11"}  # Debian bookworm's python3
# The image tests share podman's store and each removes the stage images its
# build left: run them one after another, on one worker, never side by side.
ONE_BUILD_AT_A_TIME = pytest.mark.xdist_group("podman-images")


@pytest.fixture(scope="module")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project (Python 3.11), locked and committed, with the base images ready."""
    missing = images.missing_tools()
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install podman buildah mmdebstrap)")
    folder = tmp_path_factory.mktemp("container")
    project = render(folder / "claims-fraud-detection", **E2E_ANSWERS)
    run(["uv", "lock"], project, env=tool_env())
    git_init_commit(project)
    images.ensure_base_images()
    return project


# In a runtime image: the scoring service started on the pipeline file its run
# wrote, and one request from a client in the same container; prints the answer.
SERVE_IN_IMAGE = """
python -m claims_fraud_detection.commands.serve --pipeline models/pipeline.joblib \\
  --host 0.0.0.0 --port 18765 >/tmp/serve.log 2>&1 &
server=$!
python - <<'CLIENT'
import json, time, urllib.request
import pandas
rows = pandas.read_parquet("data/interim/test.parquet").drop(columns=["fraud"]).head(3)
body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))})
for _ in range(120):
    try:
        urllib.request.urlopen("http://127.0.0.1:18765/ping", timeout=2)
        break
    except OSError:
        time.sleep(0.5)
request = urllib.request.Request(
    "http://127.0.0.1:18765/invocations", body.encode(), {"Content-Type": "application/json"}
)
print(urllib.request.urlopen(request, timeout=30).read().decode())
CLIENT
status=$?
kill "$server"
exit $status
"""


def check_runtime_image(tag: str) -> None:
    assert json.loads(images.image_config(tag, "User")) == "10001"
    command = json.loads(images.image_config(tag, "Cmd"))
    with images.container(tag) as box:
        assert box.run(["id", "-u"]).strip() == "10001"
        # Secrets and git never; data only as the pipeline writes it, not from the context.
        leaked = box.run(["find", "/app", "-name", ".git", "-o", "-name", ".env"])
        leaked += box.run(["find", "/app/data", "-name", "*.csv"])
        assert leaked == ""
        box.run(command, timeout=600)
        metrics = json.loads(box.run(["cat", "reports/metrics.json"]))
        assert "recall" in metrics["test"]
        # The image serves the pipeline it built, as the Docker guide says.
        answer = json.loads(box.run(["sh", "-c", SERVE_IN_IMAGE], timeout=300).splitlines()[-1])
        assert len(answer["predictions"]) == len(answer["scores"]) == 3
        # Dependencies were compiled at build time, owned by root: the user cannot alter them.
        box.run(["ls", "/opt/venv/lib/python3.11/site-packages/sklearn/__pycache__"])
        box.run(["sh", "-c", "! touch /opt/venv/lib/python3.11/site-packages/x 2>/dev/null"])


@pytest.mark.e2e
@ONE_BUILD_AT_A_TIME
def test_devcontainer_image_runs_make_setup_and_the_tests(built_project: Path) -> None:
    config = jsonc.loads((built_project / ".devcontainer" / "devcontainer.json").read_text())
    assert isinstance(config, dict)
    target = config["build"]["target"]
    tag = f"localhost/claims-fraud-detection-test:{target}"
    with images.built(built_project, tag, target):
        check_development_image(tag, built_project, config["postCreateCommand"])


def check_development_image(tag: str, project: Path, post_create_command: str) -> None:
    workspace = "/workspaces/claims-fraud-detection"
    with images.container(tag) as box:
        box.copy(project, workspace, owner="10001:10001")
        box.run(["sh", "-c", post_create_command], workdir=workspace, timeout=900)
        hooks = box.run(["ls", ".git/hooks"], workdir=workspace)
        assert "pre-commit" in hooks.split()
        output = box.run(["make", "test"], workdir=workspace, timeout=900)
        assert re.search(r"\d+ passed", output)
        assert box.run(["id", "-u"]).strip() == "10001"


@pytest.mark.e2e
@ONE_BUILD_AT_A_TIME
def test_reproduce_in_the_runtime_image_gives_the_hosts_output_hashes(
    built_project: Path, tmp_path: Path
) -> None:
    """`make reproduce-image` builds the commit's runtime image and rebuilds the host's run.

    The image it leaves is then checked as any runtime image: its non-root
    user, what its .dockerignore kept out of it, and its own command.
    """
    project = tmp_path / built_project.name
    shutil.copytree(built_project, project, symlinks=True)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    # Files the .dockerignore must keep out of the image, committed so that the
    # commit's clean worktree (the build context) holds them.
    (project / ".env").write_text("API_TOKEN=do-not-ship\n")
    (project / "data" / "raw" / "leaked.csv").write_text("a,b\n1,2\n")
    run(["git", "add", "--force", ".env", "data/raw/leaked.csv"], project)
    commit_all(project, "Run the pipeline on the host")
    options = " ".join(images.BUILD_OPTIONS)
    command = ["make", "reproduce-image", "RUN=HEAD", f"BUILD_OPTIONS={options}"]
    env = tool_env({"CONTAINER_ENGINE": "buildah", "BUILDAH_ISOLATION": "chroot"})
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    tag = f"localhost/{project.name}:reproduce-{commit[:12]}"
    with images.removed_afterwards(tag):
        done = run(command, project, env=env, check=False, timeout=1800)
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert f"image {tag}" in output
        outputs = json.loads((project / "reports" / "run.json").read_text())["outputs"]
        for path in outputs:
            assert re.search(rf"^{re.escape(path)}\s.*\ssame$", output, flags=re.MULTILINE), path
        check_runtime_image(tag)
