"""Static checks of the deployment files under infra/ (no Docker, no cluster needed).

What a cluster would only tell us at 02:00 is checked here instead: the manifests parse and
carry the fields KubeRay and Kubernetes need, the RayJob entrypoints use flags the real
``callcoach`` parser accepts, the IAM policy stays least-privilege, the CronJob's script
renders a valid RayJob for yesterday, every placeholder is documented, and the image
recipe installs exactly uv.lock.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
K8S = INFRA / "k8s"
IAM = INFRA / "iam"
README = INFRA / "README.md"
DOCKERFILE = INFRA / "Dockerfile"
RENDER = INFRA / "render.sh"

NAMESPACE = "callcoach"
JOB_SA = "callcoach-job"
SCHEDULER_SA = "callcoach-scheduler"
GPU = "nvidia.com/gpu"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
RUN_TIME_VARS = {"RUN_DATE"}

DUMMY_ENV = {
    "IMAGE": "registry.example/callcoach@sha256:" + "0" * 64,
    "KUBECTL_IMAGE": "registry.example/kubectl:1.34",
    "AWS_REGION": "eu-west-1",
    "AWS_ACCOUNT_ID": "123456789012",
    "OIDC_PROVIDER": "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE",
    "KMS_KEY_ARN": "arn:aws:kms:eu-west-1:123456789012:key/abcd",
    "INPUT_BUCKET": "in-bucket",
    "INPUT_PREFIX": "contact-centre/calls",
    "OUTPUT_BUCKET": "out-bucket",
    "OUTPUT_PREFIX": "coaching",
    "MODEL_BUCKET": "model-bucket",
    "MODEL_PREFIX": "callcoach/models",
}


# -- helpers ----------------------------------------------------------------------------

def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _one(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


def _rayjob(name: str) -> dict:
    return _one(K8S / name, "RayJob")


def _groups(rayjob: dict) -> tuple[dict, dict[str, dict]]:
    spec = rayjob["spec"]["rayClusterSpec"]
    return spec["headGroupSpec"], {g["groupName"]: g for g in spec.get("workerGroupSpecs", [])}


def _pod_specs(rayjob: dict) -> list[tuple[str, dict]]:
    head, workers = _groups(rayjob)
    return [("head", head["template"]["spec"])] + [
        (name, g["template"]["spec"]) for name, g in workers.items()]


def _containers(pod: dict) -> list[dict]:
    return list(pod.get("containers", []))


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def _walk(node):
    yield node
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _parser():
    from callcoach.cli import _parser as parser

    return parser()


def _parse(argv: list[str]):
    try:
        return _parser().parse_args(argv)
    except SystemExit as exc:  # argparse prints the reason to stderr
        pytest.fail(f"`callcoach {' '.join(argv)}` is rejected by callcoach.cli._parser() "
                    f"(exit {exc.code}); see the captured stderr")


def _subcommands() -> set[str]:
    import argparse

    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def _render(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(DUMMY_ENV if env is None else env)}
    return subprocess.run(["sh", str(RENDER), str(path)], capture_output=True, text=True,
                          env=full, timeout=30)


def _statements(path: Path) -> list[dict]:
    doc = json.loads(path.read_text())
    assert doc.get("Version") == "2012-10-17", f"{path.name}: policy Version must be 2012-10-17"
    stmts = doc["Statement"]
    return stmts if isinstance(stmts, list) else [stmts]


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def _readme() -> str:
    return README.read_text()


def _documented_placeholders() -> set[str]:
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", _readme(), re.M))


# -- every manifest ---------------------------------------------------------------------

EXPECTED_KINDS = {
    "serviceaccount.yaml": {"Namespace", "ServiceAccount"},
    "rayjob-nightly.yaml": {"RayJob"},
    "rayjob-backfill.yaml": {"RayJob"},
    "cronjob-nightly.yaml": {"ServiceAccount", "Role", "RoleBinding", "CronJob"},
}


def test_every_k8s_yaml_parses_with_expected_kinds():
    files = sorted(p.name for p in K8S.glob("*.yaml"))
    assert set(files) == set(EXPECTED_KINDS), f"infra/k8s holds {files}; update EXPECTED_KINDS"
    for name in files:
        docs = _docs(K8S / name)
        assert docs, f"{name} is empty"
        kinds = {d.get("kind") for d in docs}
        assert kinds == EXPECTED_KINDS[name], f"{name}: kinds {kinds}"
        for d in docs:
            assert d.get("apiVersion"), f"{name}: {d.get('kind')} without apiVersion"
            meta = d.get("metadata") or {}
            assert meta.get("name") or meta.get("generateName"), f"{name}: {d['kind']} unnamed"
            if d["kind"] != "Namespace":
                assert meta.get("namespace") == NAMESPACE, f"{name}: {d['kind']} not in {NAMESPACE}"


def test_rendered_manifests_have_no_placeholders_left_but_run_date():
    for path in sorted(K8S.glob("*.yaml")):
        out = _render(path)
        assert out.returncode == 0, f"render.sh {path.name}: {out.stderr}"
        left = set(PLACEHOLDER.findall(out.stdout))
        assert left <= RUN_TIME_VARS, f"{path.name}: unrendered deploy-time placeholders {left}"
        rendered = out.stdout.replace("${RUN_DATE}", "2026-11-21")
        assert [d for d in yaml.safe_load_all(rendered) if d], f"{path.name}: no YAML after render"


# -- the nightly RayJob -----------------------------------------------------------------

def test_nightly_rayjob_lifecycle_and_autoscaling():
    job = _rayjob("rayjob-nightly.yaml")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] > 0
    assert 0 < spec["activeDeadlineSeconds"] < 24 * 3600, "a run must end before the next night"
    cluster = spec["rayClusterSpec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert isinstance(cluster.get("autoscalerOptions"), dict) and cluster["autoscalerOptions"]
    assert cluster["rayVersion"] == _locked_version("ray")


def test_nightly_head_is_cpu_only_and_takes_no_work():
    head, _ = _groups(_rayjob("rayjob-nightly.yaml"))
    assert str(head["rayStartParams"]["num-cpus"]) == "0"
    assert GPU not in json.dumps(head), "the head must not ask for a GPU"


def test_nightly_gpu_group_scales_from_zero_on_gpu_nodes():
    job = _rayjob("rayjob-nightly.yaml")
    _, workers = _groups(job)
    gpu_groups = [g for g in workers.values()
                  if any(GPU in (c.get("resources", {}).get("limits") or {})
                         for c in _containers(g["template"]["spec"]))]
    assert len(gpu_groups) == 1, "exactly one GPU worker group"
    g = gpu_groups[0]
    assert g["minReplicas"] == 0 and g.get("replicas", 0) == 0
    assert g["maxReplicas"] >= 1
    pod = g["template"]["spec"]
    (worker,) = [c for c in _containers(pod) if c["name"] == "ray-worker"]
    assert int(worker["resources"]["limits"][GPU]) == 1
    assert int(worker["resources"]["requests"][GPU]) == 1
    assert any(t.get("key") == GPU and t.get("effect") == "NoSchedule"
               for t in pod.get("tolerations", [])), "GPU pods must tolerate the GPU taint"
    # a CPU group for decode and scoring, without GPUs
    cpu_groups = [g for g in workers.values() if g not in gpu_groups]
    assert cpu_groups and all(GPU not in json.dumps(c) for c in cpu_groups)


def test_nightly_model_cache_is_node_local_and_matches_env():
    job = _rayjob("rayjob-nightly.yaml")
    _, workers = _groups(job)
    pod = workers["gpu"]["template"]["spec"]
    (worker,) = [c for c in _containers(pod) if c["name"] == "ray-worker"]
    cache = _env(worker)["CALLCOACH_MODEL_CACHE"]
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = [m for m in worker["volumeMounts"] if cache.startswith(m["mountPath"].rstrip("/") + "/")
              or cache == m["mountPath"]]
    assert mounts, f"CALLCOACH_MODEL_CACHE={cache} is not on a mounted volume"
    vol = vols[mounts[0]["name"]]
    assert "hostPath" in vol or "emptyDir" in vol, "model cache must be node-local"
    # The driver (head) builds ModelConfig, whose cache_dir default comes from ITS env.
    for where, p in _pod_specs(job):
        for c in _containers(p):
            assert _env(c).get("CALLCOACH_MODEL_CACHE") == cache, f"{where}/{c['name']}"
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert runtime_env["env_vars"]["CALLCOACH_MODEL_CACHE"] == cache
    assert f"CALLCOACH_MODEL_CACHE={cache}" in DOCKERFILE.read_text()


@pytest.mark.parametrize("name", ["rayjob-nightly.yaml", "rayjob-backfill.yaml"])
def test_rayjob_pods_identity_env_resources_and_security(name):
    job = _rayjob(name)
    runtime_env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert "working_dir" not in runtime_env, "code is in the image; no working_dir upload"
    env_vars = runtime_env["env_vars"]
    assert env_vars["PYANNOTE_METRICS_ENABLED"] == "false"
    assert env_vars["HF_HUB_OFFLINE"] == "1"
    assert env_vars["AWS_REGION"] == "${AWS_REGION}"
    uid = _dockerfile_uid()
    for where, pod in _pod_specs(job):
        assert pod["serviceAccountName"] == JOB_SA, f"{name}:{where} must run as {JOB_SA} (IRSA)"
        sec = pod.get("securityContext", {})
        assert sec.get("runAsNonRoot") is True and sec.get("runAsUser") == uid, f"{name}:{where}"
        for c in _containers(pod) + list(pod.get("initContainers", [])):
            res = c.get("resources", {})
            assert res.get("requests") and res.get("limits"), f"{name}:{where}/{c['name']} resources"
            for key in ("cpu", "memory"):
                assert key in res["requests"] and key in res["limits"], f"{name}:{where}/{c['name']} {key}"
        for c in _containers(pod):
            assert c["image"] == "${IMAGE}", f"{name}:{where}/{c['name']} image"
            env = _env(c)
            assert env.get("AWS_REGION") == "${AWS_REGION}", f"{name}:{where} AWS_REGION"
            assert env.get("PYANNOTE_METRICS_ENABLED") == "false"
            assert env.get("HF_HUB_OFFLINE") == "1"


def _score_argv() -> list[str]:
    entry = _rayjob("rayjob-nightly.yaml")["spec"]["entrypoint"]
    return shlex.split(entry)


def test_nightly_entrypoint_runs_score_calls_with_flags_the_cli_accepts():
    argv = _score_argv()
    assert argv[0] == "python"
    script = argv[1]
    assert script.endswith("jobs/score_calls.py")
    assert (ROOT / "jobs" / "score_calls.py").is_file()
    # /app is the image's WORKDIR and jobs/ is copied there
    assert script == "/app/jobs/score_calls.py"
    docker = DOCKERFILE.read_text()
    assert re.search(r"^WORKDIR /app$", docker, re.M) and re.search(r"^COPY jobs \./jobs$", docker, re.M)

    # jobs/score_calls.py calls main(["score", *sys.argv[1:]])
    assert 'main(["score", *sys.argv[1:]])' in (ROOT / "jobs" / "score_calls.py").read_text()
    args = _parse(["score", *argv[2:]])
    assert args.command == "score"
    assert args.device == "cuda"
    assert args.gpus_per_actor == 1
    assert args.input.startswith("s3://") and args.output.startswith("s3://")
    assert args.prefix == "${RUN_DATE}", "each night lists only its day folder"
    assert "${RUN_DATE}" not in args.output, "all runs share one output (ledger, tables)"
    assert args.models.startswith("s3://")
    assert not args.force, "--force would re-transcribe every call of the day each night"
    _, workers = _groups(_rayjob("rayjob-nightly.yaml"))
    gpu_max = workers["gpu"]["maxReplicas"]
    assert 1 <= args.speech_actors <= gpu_max, (
        f"--speech-actors {args.speech_actors} needs that many GPUs; the GPU group has at most {gpu_max}")


def test_nightly_paths_match_the_iam_policy():
    args = _parse(["score", *_score_argv()[2:]])
    assert args.input == "s3://${INPUT_BUCKET}/${INPUT_PREFIX}/"
    assert args.output == "s3://${OUTPUT_BUCKET}/${OUTPUT_PREFIX}/"
    assert args.models == "s3://${MODEL_BUCKET}/${MODEL_PREFIX}"
    job = _rayjob("rayjob-nightly.yaml")
    assert job["metadata"]["name"] == "callcoach-nightly-${RUN_DATE}"


def _assert_ruleset_mounted_everywhere(name: str, ruleset: str):
    for where, pod in _pod_specs(_rayjob(name)):
        vols = {v["name"]: v for v in pod["volumes"]}
        (c,) = [c for c in _containers(pod) if c["name"].startswith("ray-")]
        mounts = [m for m in c["volumeMounts"] if ruleset.startswith(m["mountPath"].rstrip("/") + "/")]
        assert mounts, f"{name} {where}: {ruleset} is not on a mounted volume"
        cm = vols[mounts[0]["name"]].get("configMap", {})
        assert cm.get("name") == "callcoach-ruleset", f"{name} {where}"
        assert ruleset.rsplit("/", 1)[1] == "ruleset.yaml"


def test_nightly_ruleset_is_the_shared_configmap_on_every_pod():
    # The driver reads the rule-set version; Score actors may run on any worker.
    args = _parse(["score", *_score_argv()[2:]])
    assert args.ruleset
    _assert_ruleset_mounted_everywhere("rayjob-nightly.yaml", args.ruleset)


# -- the backfill RayJob ----------------------------------------------------------------

def _backfill_argv() -> list[str]:
    return shlex.split(_rayjob("rayjob-backfill.yaml")["spec"]["entrypoint"])


def test_backfill_rayjob_is_cpu_only():
    job = _rayjob("rayjob-backfill.yaml")
    assert job["apiVersion"] == "ray.io/v1"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert GPU not in json.dumps(job), "the backfill must not ask for GPUs"
    assert not any(isinstance(k, str) and "gpu" in k.lower() for k in _walk(job)
                   if isinstance(k, str) and not k.startswith("${"))
    head, workers = _groups(job)
    assert str(head["rayStartParams"]["num-cpus"]) == "0"
    assert workers and all(GPU not in json.dumps(g) for g in workers.values())


def test_backfill_entrypoint_shape_and_ruleset_mount():
    argv = _backfill_argv()
    assert argv[:2] == ["callcoach", "rescore"], argv
    flags = argv[2::2]
    assert flags == ["--output", "--ruleset", "--sse", "--sse-kms-key-id"], \
        f"rescore takes --output URI --ruleset FILE and the nightly's encryption: {argv}"
    output, ruleset = argv[3], argv[5]
    # what the backfill rewrites is encrypted exactly as the nightly run writes it
    nightly_argv = _score_argv()
    for flag in ("--sse", "--sse-kms-key-id"):
        assert argv[argv.index(flag) + 1] == nightly_argv[nightly_argv.index(flag) + 1]
    # the backfill re-scores the very output the nightly runs write, with the same rules
    nightly = _parse(["score", *_score_argv()[2:]])
    assert output == nightly.output
    assert ruleset == nightly.ruleset
    # the console script exists
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.get("callcoach") == "callcoach.cli:main"
    _assert_ruleset_mounted_everywhere("rayjob-backfill.yaml", ruleset)
    assert "create configmap callcoach-ruleset --from-file=ruleset.yaml=" in _readme()


def test_backfill_entrypoint_parses_once_rescore_exists():
    if "rescore" not in _subcommands():
        pytest.skip("callcoach.cli has no `rescore` subcommand yet; the shape is checked above")
    args = _parse(_backfill_argv()[1:])
    assert args.command == "rescore"
    assert not args.force


# -- the nightly CronJob ----------------------------------------------------------------

def _cron() -> dict:
    return _one(K8S / "cronjob-nightly.yaml", "CronJob")


def _cron_container() -> dict:
    (c,) = _cron()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return c


def test_cronjob_schedule_and_policy():
    cron = _cron()
    spec = cron["spec"]
    assert cron["apiVersion"] == "batch/v1"
    assert spec["schedule"] == "0 2 * * *"
    assert spec.get("timeZone") in ("Etc/UTC", "UTC")
    assert spec["concurrencyPolicy"] == "Forbid"
    assert isinstance(spec["startingDeadlineSeconds"], int) and spec["startingDeadlineSeconds"] > 0
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SCHEDULER_SA
    assert pod["restartPolicy"] in ("Never", "OnFailure")


def test_cronjob_rbac_only_creates_and_reads_rayjobs():
    path = K8S / "cronjob-nightly.yaml"
    role = _one(path, "Role")
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"],
                              "verbs": ["create", "get", "list", "watch"]}]
    binding = _one(path, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SCHEDULER_SA,
                                    "namespace": NAMESPACE}]
    assert _one(path, "ServiceAccount")["metadata"]["name"] == SCHEDULER_SA


def test_cronjob_template_configmap_is_the_one_readme_creates():
    pod = _cron()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    c = _cron_container()
    template = _env(c)["TEMPLATE"]
    mount = [m for m in c["volumeMounts"] if template.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mount, "TEMPLATE is not on a mounted volume"
    vol = {v["name"]: v for v in pod["volumes"]}[mount[0]["name"]]
    cm_name = vol["configMap"]["name"]
    key = template.rsplit("/", 1)[1]
    assert re.search(rf"create configmap {re.escape(cm_name)}\s+\\?\s*--from-file={re.escape(key)}=",
                     _readme()), f"README must create ConfigMap {cm_name} with key {key}"


def test_cronjob_script_has_no_kubernetes_expansions():
    # Kubernetes expands $(NAME) in command/args before the shell sees them.
    c = _cron_container()
    assert not any("$(" in part for part in c["command"] + c["args"])


@pytest.fixture
def cron_sandbox(tmp_path):
    for tool in ("sh", "sed", "date", "expr", "grep"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not available")
    rendered = _render(K8S / "rayjob-nightly.yaml")
    assert rendered.returncode == 0, rendered.stderr
    template = tmp_path / "rayjob.yaml"
    template.write_text(rendered.stdout)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "kubectl.log"
    created = tmp_path / "created.yaml"
    kubectl = bindir / "kubectl"
    kubectl.write_text(f"""#!/bin/sh
printf '%s\n' "$*" >> {log}
case " $* " in
  *" get rayjob "*) [ -n "${{FAKE_EXISTS:-}}" ] && exit 0; exit 1 ;;
  *" get rayjobs "*) [ -n "${{FAKE_ACTIVE:-}}" ] && printf '%s\n' "$FAKE_ACTIVE"; exit 0 ;;
  *" create -f "*) for last; do :; done; cp "$last" {created}; exit 0 ;;
esac
exit 3
""")
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    script = _cron_container()["args"][0]

    def run(**env):
        full = {"PATH": f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "NAMESPACE": NAMESPACE,
                "TEMPLATE": str(template), "HOME": str(tmp_path), "RUN_DATE": "", **env}
        # the container's /tmp is an emptyDir; keep the test's writes in its own folder
        body = script.replace("/tmp/rayjob.yaml", str(tmp_path / "out.yaml"))
        return subprocess.run(["sh", "-c", body], capture_output=True, text=True, env=full, timeout=30)

    return run, created, log


def test_cronjob_script_creates_yesterdays_rayjob(cron_sandbox):
    run, created, _ = cron_sandbox
    before = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    out = run()
    after = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    assert out.returncode == 0, out.stderr
    (job,) = [d for d in yaml.safe_load_all(created.read_text()) if d]
    day = job["metadata"]["labels"]["callcoach.io/run-date"]
    assert day in (before, after)
    assert job["kind"] == "RayJob" and job["metadata"]["name"] == f"callcoach-nightly-{day}"
    assert "${" not in created.read_text()
    args = _parse(["score", *shlex.split(job["spec"]["entrypoint"])[2:]])
    assert args.input == "s3://in-bucket/contact-centre/calls/"
    assert args.prefix == day
    assert args.output == "s3://out-bucket/coaching/"


def test_cronjob_script_forced_date_existing_and_bad_date(cron_sandbox):
    run, created, log = cron_sandbox
    out = run(RUN_DATE="2026-11-21")
    assert out.returncode == 0, out.stderr
    assert "callcoach-nightly-2026-11-21" in created.read_text()
    created.unlink()
    out = run(RUN_DATE="2026-11-21", FAKE_EXISTS="1")
    assert out.returncode == 0 and not created.exists(), "must not start a second run for a day"
    assert "already exists" in out.stdout
    out = run(RUN_DATE="2026/11/21")
    assert out.returncode == 2 and not created.exists()
    assert all("delete" not in line for line in log.read_text().splitlines())


def test_cronjob_script_waits_for_active_runs(cron_sandbox):
    run, created, log = cron_sandbox
    finished = "callcoach-nightly-2026-11-19=Complete\ncallcoach-rescore-x7k2p=Failed"
    out = run(RUN_DATE="2026-11-21", FAKE_ACTIVE=finished)
    assert out.returncode == 0 and created.exists(), out.stderr
    created.unlink()
    active = finished + "\ncallcoach-rescore-q9z8w=Running"
    out = run(RUN_DATE="2026-11-21", FAKE_ACTIVE=active)
    assert out.returncode == 1 and not created.exists()
    assert "callcoach-rescore-q9z8w=Running" in out.stderr
    # a RayJob the operator has not picked up yet (no status) counts as active
    out = run(RUN_DATE="2026-11-21", FAKE_ACTIVE="callcoach-rescore-new=")
    assert out.returncode == 1 and not created.exists()
    (query,) = [l for l in log.read_text().splitlines() if "get rayjobs" in l][:1]
    assert "-l app.kubernetes.io/name=callcoach" in query
    assert "{.status.jobDeploymentStatus}" in query and '{"\\n"}' in query


def test_render_refuses_missing_values_and_slashed_prefixes():
    env = dict(DUMMY_ENV)
    del env["IMAGE"]
    out = _render(K8S / "rayjob-nightly.yaml", env)
    assert out.returncode != 0 and "IMAGE" in out.stderr
    out = _render(K8S / "rayjob-nightly.yaml", {**DUMMY_ENV, "INPUT_PREFIX": "calls/"})
    assert out.returncode != 0 and "INPUT_PREFIX" in out.stderr
    # the CronJob's shell variables survive rendering
    out = _render(K8S / "cronjob-nightly.yaml")
    assert out.returncode == 0 and '"$RUN_DATE"' in out.stdout and "$now" in out.stdout


# -- IAM --------------------------------------------------------------------------------

POLICY = IAM / "callcoach-job-policy.json"
TRUST = IAM / "trust-policy-irsa.json"
# ListBucket without a prefix condition, each justified in infra/README.md.
UNCONDITIONED_LIST_OK = {"ListInputBucket", "ListOutputBucket"}
OBJECT_ARN = re.compile(r"^arn:aws:s3:::\$\{([A-Z]+)_BUCKET\}/\$\{\1_PREFIX\}/(.*)$")
BUCKET_ARN = re.compile(r"^arn:aws:s3:::\$\{([A-Z]+)_BUCKET\}$")


def _deletable_prefixes() -> tuple[str, ...]:
    """Where the job deletes, taken from the code: the ledger's staging entries and the
    files of rebuilt tables (stale partitions).  Nothing else may be deletable."""
    from callcoach import ledger, planning

    return (ledger.ENTRIES.strip("/") + "/", planning.TABLES.strip("/") + "/")


def test_iam_policy_is_least_privilege():
    stmts = _statements(POLICY)
    sids = [s.get("Sid") for s in stmts]
    assert all(sids) and len(set(sids)) == len(sids), "every statement needs a unique Sid"
    for s in stmts:
        sid = s["Sid"]
        assert s["Effect"] == "Allow", sid
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(s), f"{sid}: Not* widens grants"
        actions = _as_list(s["Action"])
        resources = _as_list(s["Resource"])
        for a in actions:
            assert "*" not in a, f"{sid}: wildcard action {a}"
            assert a.split(":")[0] in ("s3", "kms"), f"{sid}: unexpected service in {a}"
        for r in resources:
            assert r != "*" and r != "arn:aws:s3:::*", f"{sid}: wildcard resource"
            if r.startswith("arn:aws:s3:::"):
                m_obj, m_bucket = OBJECT_ARN.match(r), BUCKET_ARN.match(r)
                assert m_obj or m_bucket, f"{sid}: {r} is neither a prefix of a bucket nor a bucket"
                if m_obj:
                    rest = m_obj.group(2)
                    assert rest == "*" or rest.endswith("/*") and "*" not in rest[:-1], f"{sid}: {r}"
        if any(a.startswith("kms:") for a in actions):
            assert set(actions) <= {"kms:Decrypt", "kms:GenerateDataKey"}, sid
            assert resources == ["${KMS_KEY_ARN}"], sid
            assert s["Condition"]["StringEquals"]["kms:ViaService"] == "s3.${AWS_REGION}.amazonaws.com"
        if "s3:ListBucket" in actions:
            assert actions == ["s3:ListBucket"] and all(BUCKET_ARN.match(r) for r in resources), sid
            cond = s.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
            if cond is None:
                assert sid in UNCONDITIONED_LIST_OK, f"{sid}: ListBucket without an s3:prefix condition"
            else:
                bucket = BUCKET_ARN.match(resources[0]).group(1)
                assert _as_list(cond) == [f"${{{bucket}_PREFIX}}/*"], f"{sid}: prefix condition"
        for a in actions:
            if "Delete" in a:
                assert a == "s3:DeleteObject", f"{sid}: {a}"
                for r in resources:
                    m = OBJECT_ARN.match(r)
                    assert m and m.group(1) == "OUTPUT", f"{sid}: delete outside the output: {r}"
                    assert any(m.group(2) == p + "*" for p in _deletable_prefixes()), (
                        f"{sid}: {r} is not one of the prefixes the job deletes in "
                        f"{_deletable_prefixes()}")


def test_iam_inputs_and_models_are_read_only_and_output_is_writable():
    writes = {"s3:PutObject", "s3:DeleteObject", "s3:PutObjectAcl", "s3:AbortMultipartUpload"}
    granted: dict[str, set[str]] = {}
    for s in _statements(POLICY):
        for r in _as_list(s["Resource"]):
            m = OBJECT_ARN.match(r) or BUCKET_ARN.match(r)
            if m:
                granted.setdefault(m.group(1), set()).update(_as_list(s["Action"]))
    assert set(granted) == {"INPUT", "MODEL", "OUTPUT"}
    for ro in ("INPUT", "MODEL"):
        assert granted[ro] == {"s3:GetObject", "s3:ListBucket"}, ro
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket"} <= granted["OUTPUT"]
    assert granted["OUTPUT"] & writes <= {"s3:PutObject", "s3:DeleteObject"}
    # reports, transcripts, the ledger snapshot and run summaries are never deletable
    for s in _statements(POLICY):
        if "s3:DeleteObject" in _as_list(s["Action"]):
            for r in _as_list(s["Resource"]):
                assert not re.search(r"/(reports|transcripts|runs)/|/state/\*$|/\$\{OUTPUT_PREFIX\}/\*$", r), r


def test_only_ledger_and_tables_code_deletes():
    # If another module starts deleting, the IAM policy (and this test) must be revisited.
    callers = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "pipelines" / "callcoach").rglob("*.py")
                     if re.search(r"\.delete\(", p.read_text()))
    assert callers == ["pipelines/callcoach/ledger.py", "pipelines/callcoach/tables.py"], callers


def test_unconditioned_list_is_still_needed():
    # exists() = HeadObject, then HeadBucket on a 404; both need an unconditioned
    # s3:ListBucket.  If exists() moves to ListObjectsV2, restore the prefix conditions.
    import inspect

    from callcoach.storage import S3Store

    src = inspect.getsource(S3Store.exists)
    assert "head_object" in src and "head_bucket" in src, (
        "S3Store.exists() changed: put s3:prefix conditions back on ListInputBucket/ListOutputBucket")


def test_unconditioned_list_is_justified_in_readme():
    readme = _readme()
    for sid in UNCONDITIONED_LIST_OK:
        assert re.search(rf"`{sid}`.*no prefix condition", readme, re.I), sid


def test_irsa_trust_matches_the_service_account():
    (s,) = _statements(TRUST)
    assert s["Effect"] == "Allow"
    assert s["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert s["Principal"]["Federated"] == "arn:aws:iam::${AWS_ACCOUNT_ID}:oidc-provider/${OIDC_PROVIDER}"
    cond = s["Condition"]["StringEquals"]
    assert cond["${OIDC_PROVIDER}:aud"] == "sts.amazonaws.com"
    sa = _one(K8S / "serviceaccount.yaml", "ServiceAccount")
    assert cond["${OIDC_PROVIDER}:sub"] == (
        f"system:serviceaccount:{sa['metadata']['namespace']}:{sa['metadata']['name']}")
    assert sa["metadata"]["name"] == JOB_SA
    role_arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = role_arn.rsplit("/", 1)[1]
    assert role_arn == f"arn:aws:iam::${{AWS_ACCOUNT_ID}}:role/{role}"
    assert f"--role-name {role}" in _readme()


def test_iam_json_renders_to_valid_json():
    for path in (POLICY, TRUST):
        out = _render(path)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert "${" not in json.dumps(doc)


# -- placeholders and the README ----------------------------------------------------------

def _placeholder_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml")) + sorted(IAM.glob("*.json"))


def test_every_placeholder_is_documented_and_rendered():
    used: set[str] = set()
    for path in _placeholder_files():
        used |= set(PLACEHOLDER.findall(path.read_text()))
    documented = _documented_placeholders()
    assert used - documented == set(), f"undocumented placeholders: {sorted(used - documented)}"
    assert documented - used == set(), f"README documents unused placeholders: {sorted(documented - used)}"
    deploy = set(re.search(r'DEPLOY_VARS="([^"]*)"', RENDER.read_text()).group(1).split())
    assert deploy == used - RUN_TIME_VARS, "render.sh DEPLOY_VARS must list every deploy-time placeholder"


def test_readme_covers_the_runbook():
    readme = _readme()
    for needle in ("python -m callcoach.models install-offline", "write_manifest", "checksums.sha256",
                   "aws s3 sync", "ray job submit --working-dir . -- python jobs/score_calls.py",
                   "kubectl -n callcoach create job --from=cronjob/callcoach-nightly",
                   "docker build -f infra/Dockerfile", "callcoach rescore --output URI --ruleset FILE",
                   "infra/render.sh infra/iam/callcoach-job-policy.json"):
        assert needle in readme, needle
    for code in ("0", "1", "3"):
        assert re.search(rf"^\|\s*{code}\s*\|", readme, re.M), f"exit code {code} not documented"


# -- the image ----------------------------------------------------------------------------

def _dockerfile_lines() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]


def _dockerfile_uid() -> int:
    users = [l.split()[1] for l in _dockerfile_lines() if l.startswith("USER ")]
    assert users, "the image must switch to a non-root USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: use a numeric non-root uid"
    return int(uid)


def _locked_version(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["version"] for p in lock["package"] if p["name"] == name}
    assert len(versions) == 1, f"{name}: {versions}"
    return versions.pop()


def test_dockerfile_installs_exactly_the_lock():
    lines = _dockerfile_lines()
    copies = [l for l in lines if l.startswith("COPY ") and "--from=" not in l]
    assert any("pyproject.toml" in l.split() and "uv.lock" in l.split() for l in copies)
    syncs = [l for l in lines if "uv sync" in l]
    assert syncs, "no uv sync"
    for l in syncs:
        assert "--frozen" in l and "--no-dev" in l, l
        assert "--extra dev" not in l and "--all-extras" not in l, l
    assert not any(re.search(r"\b(pip|uv pip) install\b", l) for l in lines), "install only from uv.lock"
    # the lock must be copied before the first sync
    first_sync = next(i for i, l in enumerate(lines) if "uv sync" in l)
    assert any("uv.lock" in l for l in lines[:first_sync] if l.startswith("COPY "))


def test_dockerfile_runtime_settings():
    text = DOCKERFILE.read_text()
    lines = _dockerfile_lines()
    froms = [l for l in lines if l.startswith("ARG CUDA_IMAGE=")]
    assert froms and re.search(r"nvidia/cuda:13\.\d+\.\d+-.*ubuntu24\.04", froms[0]), froms
    assert "python3.12" in text
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    try:
        from packaging.specifiers import SpecifierSet
    except ImportError:  # pragma: no cover
        pytest.skip("packaging not installed")
    assert "3.12" in SpecifierSet(spec), f"requires-python {spec} excludes the image's 3.12"
    for pkg in ("ffmpeg", "libsndfile1"):
        assert re.search(rf"apt-get install[^\n]*\b{pkg}\b", " ".join(lines)), pkg
    assert "PYANNOTE_METRICS_ENABLED=false" in text and "HF_HUB_OFFLINE=1" in text
    assert "uv" in text and re.search(r"COPY --from=uv /uv", text)
    _dockerfile_uid()
    # no weights in the image
    assert not re.search(r"install-offline|COPY\s+models|huggingface-cli|hf download", " ".join(lines))


def test_dockerignore_allows_everything_the_image_copies():
    # BuildKit uses <Dockerfile>.dockerignore next to the Dockerfile (context = repo root)
    lines = [l.strip() for l in (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
             if l.strip() and not l.strip().startswith("#")]
    assert lines[0] == "*", "allow-list: exclude everything first"
    allowed = {l[1:].rstrip("/") for l in lines if l.startswith("!")}
    assert not {".venv", "models", "out"} & allowed
    for l in _dockerfile_lines():
        if l.startswith("COPY ") and "--from=" not in l:
            for src in l.split()[1:-1]:
                assert src.rstrip("/") in allowed, f"{src} is copied but not allowed in the dockerignore"
                assert (ROOT / src).exists(), src


def test_image_provides_the_cublas_that_ctranslate2_loads():
    libs = [p for d in sys.path if d.endswith("site-packages")
            for p in Path(d).glob("ctranslate2*/*.so*")]
    needed = set()
    for lib in libs:
        needed |= set(re.findall(rb"libcublas\.so\.(\d+)", lib.read_bytes()))
    if not needed:
        pytest.skip("no ctranslate2 shared library with CUDA support in this environment")
    torch_cuda_major = {p["version"].split(".")[0] for p in
                        tomllib.loads((ROOT / "uv.lock").read_text())["package"]
                        if p["name"] == "nvidia-cublas"}
    text = DOCKERFILE.read_text()
    for major in sorted(m.decode() for m in needed):
        if major in torch_cuda_major:
            continue  # torch's nvidia-cublas wheel ships that soname already
        assert re.search(rf"libcublas-{major}-\d+", text), (
            f"ctranslate2 loads libcublas.so.{major}; the image must install cuBLAS {major}")
        assert f"libcublas.so.{major} " in text, "the image should assert the soname is found"


def test_lock_has_ray_dashboard_dependencies():
    """KubeRay needs ray[default] in the image (job server, dashboard agent, probes)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    (project,) = [p for p in lock["package"] if p["name"] == "callcoach"]
    ray_deps = [d for d in project.get("dependencies", []) if d["name"] == "ray"]
    extras = {e for d in ray_deps for e in d.get("extra", [])}
    assert "default" in extras, (
        "uv.lock installs ray without the `default` extra: the KubeRay head has no dashboard/job "
        "server, so RayJobs cannot be submitted and KubeRay's probes fail. Change the dependency to "
        "\"ray[data,default]==2.60.0\" in pyproject.toml and re-lock (see infra/README.md).")
