"""infra/ holds what a team runs: its security properties are checked here.

No Docker engine, no Terraform providers and no cloud account are needed: the
Compose file is validated against the Compose Specification's JSON schema and
the Terraform files are parsed as HCL, then each property a team relies on
(authentication on, no committed secret, loopback-only ports, Object Lock, no
open database network, least-privilege IAM) is asserted on the parsed config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import hcl2
import jsonschema
import pytest
import yaml
from pymongo.uri_parser import parse_uri

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
COMPOSE_DIR = INFRA / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
TERRAFORM_DIR = INFRA / "terraform" / "aws"

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|PRIVATE", re.IGNORECASE)
REQUIRED_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]*\}$")
PINNED_IMAGE = re.compile(r"^[a-z0-9][a-z0-9./_-]*:v?\d+(\.\d+)+$")
OPEN_NETWORKS = ("0.0.0.0/0", "::/0")


# ------------------------------------------------------------------ compose ---


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def _long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in _services(compose).items() if not _is_one_shot(s)}


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"not KEY=VALUE in .env.example: {line!r}"
            values[key.strip()] = value.strip()
    return values


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema_file = files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_cls = jsonschema.validators.validator_for(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_stack_has_catalog_object_store_and_metabase(compose: dict[str, Any]) -> None:
    images = {s["image"].split(":")[0] for s in _long_running(compose).values()}
    assert {"mongo", "versity/versitygw", "metabase/metabase"} <= images
    # MinIO's community edition is no longer maintained as images: keep it out.
    assert not any("minio" in s["image"] for s in _services(compose).values())


def test_mongodb_runs_with_authentication(compose: dict[str, Any]) -> None:
    mongodb = _services(compose)["mongodb"]
    assert "--auth" in mongodb["command"]
    env = mongodb["environment"]
    assert REQUIRED_REF.match(env["MONGO_INITDB_ROOT_USERNAME"])
    assert REQUIRED_REF.match(env["MONGO_INITDB_ROOT_PASSWORD"])


def test_every_secret_comes_from_the_uncommitted_env_file(compose: dict[str, Any]) -> None:
    secret_values = 0
    for name, service in _services(compose).items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if SECRET_NAME.search(key):
                secret_values += 1
                # ${VAR:?message}: required, no default that could be a committed secret
                assert isinstance(value, str), f"{name}.{key}"
                assert REQUIRED_REF.match(value), f"{name}.{key}"
        assert "env_file" not in service or all(
            not str(f).endswith(".env.example") for f in service["env_file"]
        )
    assert secret_values >= 8


def test_env_example_lists_every_required_variable_and_commits_no_secret(
    compose: dict[str, Any],
) -> None:
    example = _env_example()
    required = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", COMPOSE_FILE.read_text()))
    assert required <= set(example), f"missing from .env.example: {required - set(example)}"
    secrets = {k: v for k, v in example.items() if SECRET_NAME.search(k)}
    assert len(secrets) >= 6
    assert all(value == "" for value in secrets.values()), secrets


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize(
    "path",
    [
        "infra/compose/.env",
        "infra/terraform/aws/terraform.tfvars",
        "infra/terraform/aws/terraform.tfstate",
        "infra/terraform/aws/terraform.tfstate.backup",
        "infra/terraform/aws/.terraform/providers",
    ],
)
def test_files_holding_real_secrets_are_git_ignored(path: str) -> None:
    assert _git("check-ignore", "-q", "--no-index", path).returncode == 0, path


@pytest.mark.parametrize(
    "path", ["infra/compose/.env.example", "infra/terraform/aws/terraform.tfvars.example"]
)
def test_templates_are_not_git_ignored(path: str) -> None:
    assert _git("check-ignore", "-q", "--no-index", path).returncode == 1, path


def test_ports_are_bound_to_loopback_only(compose: dict[str, Any]) -> None:
    published = 0
    for name, service in _services(compose).items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            published += 1
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"
    assert published == 3


def test_long_running_services_have_health_checks(compose: dict[str, Any]) -> None:
    services = _long_running(compose)
    assert set(services) == {"mongodb", "s3", "metabase"}
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert not check.get("disable", False), name
        assert check.get("test"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name
        assert {"interval", "timeout", "retries"} <= set(check), name


def test_init_steps_wait_for_their_dependencies(compose: dict[str, Any]) -> None:
    one_shot = {n: s for n, s in _services(compose).items() if _is_one_shot(s)}
    assert {"mongodb-init", "s3-users", "s3-bucket", "metabase-init"} <= set(one_shot)
    conditions = {"service_healthy", "service_completed_successfully"}
    for name, service in one_shot.items():
        depends = service["depends_on"]
        assert all(dep["condition"] in conditions for dep in depends.values()), name


def test_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in _services(compose).items():
        for mount in service.get("volumes", []):
            source, _target, *mode = str(mount).split(":")
            if _is_one_shot(service):
                # init steps only read their committed script
                assert source.startswith("./init/"), f"{name}: {mount}"
                assert mode == ["ro"], f"{name}: {mount}"
            else:
                assert source in declared, f"{name}: {mount} is not a named volume"
                assert not source.startswith((".", "/", "~")), f"{name}: {mount}"
    assert {"mongodb-data", "s3-buckets", "s3-versions", "s3-iam", "metabase-data"} <= declared


def test_images_are_pinned_to_versions(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert PINNED_IMAGE.match(service["image"]), f"{name}: {service['image']}"


def test_mongodb_init_creates_least_privilege_users() -> None:
    script = (COMPOSE_DIR / "init" / "mongodb-users.js").read_text()
    roles = re.findall(r'role:\s*"(\w+)",\s*db:\s*(\w+)', script)
    assert ("readWrite", "catalogDb") in roles
    assert ("read", "catalogDb") in roles
    assert {role for role, _ in roles} <= {"read", "readWrite", "dbAdmin"}
    assert ("dbAdmin", "catalogDb") not in roles
    assert "AnyDatabase" not in script


def test_s3_init_creates_a_locked_bucket_and_grants_no_delete() -> None:
    script = (COMPOSE_DIR / "init" / "s3-bucket.sh").read_text()
    assert "--object-lock-enabled-for-bucket" in script
    assert "put-object-lock-configuration" in script
    policy = script[script.index("<<JSON") : script.index("\nJSON\n")]
    actions = set(re.findall(r'"(s3:[A-Za-z*]+)"', policy))
    assert {"s3:ListBucket", "s3:GetObject", "s3:PutObject"} <= actions
    assert not {a for a in actions if "Delete" in a or "*" in a or "Bypass" in a}
    users = (COMPOSE_DIR / "init" / "s3-users.sh").read_text()
    assert "--role user" in users
    assert "--role admin" not in users


def _run_script(script: str, *args: str, env: dict[str, str] | None = None) -> str:
    sh = shutil.which("sh")
    assert sh is not None
    result = subprocess.run(
        [sh, str(COMPOSE_DIR / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_env_generates_distinct_secrets_in_a_private_file(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    _run_script("make-env.sh", str(target))
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    values = dict(
        line.split("=", 1) for line in target.read_text().splitlines() if line and line[0] != "#"
    )
    secrets = [v for k, v in values.items() if SECRET_NAME.search(k)]
    assert len(secrets) >= 6
    assert all(re.fullmatch(r"[0-9a-f]{48}", s) for s in secrets)
    assert len(set(secrets)) == len(secrets)
    again = subprocess.run(
        ["sh", str(COMPOSE_DIR / "make-env.sh"), str(target)], capture_output=True, check=False
    )
    assert again.returncode != 0  # never overwrites existing secrets


def test_elliptio_env_prints_settings_for_the_stack(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    _run_script("make-env.sh", str(target))
    output = _run_script("elliptio-env.sh", env={"ENV_FILE": str(target)})
    exports = dict(re.findall(r"^export (ELLIPTIO_\w+)='(.*)'$", output, re.MULTILINE))
    assert set(exports) == {
        "ELLIPTIO_STORAGE_URL",
        "ELLIPTIO_STORAGE_OPTIONS",
        "ELLIPTIO_CATALOG_URL",
        "ELLIPTIO_TEST_MONGODB_URI",
    }
    assert exports["ELLIPTIO_STORAGE_URL"] == "s3://elliptio/lake"
    options = json.loads(exports["ELLIPTIO_STORAGE_OPTIONS"])
    assert options["endpoint_url"] == "http://127.0.0.1:7070"
    assert options["key"] == "elliptio"
    assert len(options["secret"]) == 48

    catalog = parse_uri(exports["ELLIPTIO_CATALOG_URL"])
    assert catalog["nodelist"] == [("127.0.0.1", 27017)]
    assert (catalog["username"], catalog["database"]) == ("elliptio", "elliptio")
    assert {k.lower(): v for k, v in catalog["options"].items()}["authsource"] == "admin"
    test_uri = parse_uri(exports["ELLIPTIO_TEST_MONGODB_URI"])
    assert (test_uri["username"], test_uri["database"]) == ("elliptio_test", "elliptio_test")
    only_uri = _run_script("elliptio-env.sh", "--test-uri", env={"ENV_FILE": str(target)})
    assert only_uri.strip() == exports["ELLIPTIO_TEST_MONGODB_URI"]


# ---------------------------------------------------------------- terraform ---


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


@pytest.fixture(scope="module")
def tf() -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        with path.open() as handle:
            for key, blocks in hcl2.load(handle).items():
                if not key.startswith("__"):
                    merged.setdefault(key, []).extend(blocks)
    return merged


def _resources(tf: dict[str, list[Any]], kind: str = "resource") -> Iterator[tuple[str, Any]]:
    for entry in tf.get(kind, []):
        for rtype, named in entry.items():
            if rtype.startswith("__"):
                continue
            for name, body in named.items():
                yield f"{_unquote(rtype)}.{_unquote(name)}", body


def _resource(tf: dict[str, list[Any]], address: str, kind: str = "resource") -> Any:
    found = [body for addr, body in _resources(tf, kind) if addr == address]
    assert len(found) == 1, f"expected exactly one {address}"
    return found[0]


def _named(tf: dict[str, list[Any]], kind: str) -> dict[str, Any]:
    return {_unquote(n): b for entry in tf.get(kind, []) for n, b in entry.items()}


def _locals(tf: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: v for entry in tf.get("locals", []) for k, v in entry.items() if k[:2] != "__"}


def test_terraform_files_parse(tf: dict[str, list[Any]]) -> None:
    assert {"terraform", "provider", "variable", "resource", "output"} <= set(tf)


def test_no_open_network_anywhere_in_infra() -> None:
    checked = 0
    for path in INFRA.rglob("*"):
        if path.is_file() and ".terraform" not in path.parts:
            text = path.read_text(errors="replace")
            checked += 1
            for network in OPEN_NETWORKS:
                assert network not in text, f"{path.relative_to(ROOT)} mentions {network}"
    assert checked >= 15


def test_atlas_access_list_only_from_validated_cidr_variable(tf: dict[str, list[Any]]) -> None:
    entries = [b for a, b in _resources(tf) if a.startswith("mongodbatlas_project_ip_access_list")]
    assert len(entries) == 1
    entry = entries[0]
    assert entry["for_each"] == "${toset(var.atlas_access_cidrs)}"
    assert entry["cidr_block"] == "${each.value}"
    assert "ip_address" not in entry

    variable = _named(tf, "variable")["atlas_access_cidrs"]
    assert "default" not in variable  # every deployment names its own networks
    conditions = " ".join(v["condition"] for v in variable["validation"])
    assert "cidrhost(" in conditions
    # the prefix length of every block is checked, which refuses any /0
    assert re.search(r'split\("/", cidr\)\[1\]\) >= .*\? 32 : 16', conditions)


def test_bucket_has_object_lock_and_versioning(tf: dict[str, list[Any]]) -> None:
    bucket = _resource(tf, "aws_s3_bucket.artifacts")
    assert bucket["object_lock_enabled"] is True
    assert bucket.get("force_destroy", False) is False
    versioning = _resource(tf, "aws_s3_bucket_versioning.artifacts")
    assert _unquote(versioning["versioning_configuration"][0]["status"]) == "Enabled"
    lock = _resource(tf, "aws_s3_bucket_object_lock_configuration.artifacts")
    retention = lock["rule"][0]["default_retention"][0]
    assert retention["mode"] == "${var.object_lock_mode}"
    assert retention["days"] == "${var.object_lock_retention_days}"
    mode = _named(tf, "variable")["object_lock_mode"]
    assert "GOVERNANCE" in mode["validation"][0]["condition"]
    assert "COMPLIANCE" in mode["validation"][0]["condition"]


def test_bucket_blocks_all_public_access(tf: dict[str, list[Any]]) -> None:
    block = _resource(tf, "aws_s3_bucket_public_access_block.artifacts")
    assert block["bucket"] == "${aws_s3_bucket.artifacts.id}"
    for flag in (
        "block_public_acls",
        "block_public_policy",
        "ignore_public_acls",
        "restrict_public_buckets",
    ):
        assert block[flag] is True, flag
    ownership = _resource(tf, "aws_s3_bucket_ownership_controls.artifacts")
    assert _unquote(ownership["rule"][0]["object_ownership"]) == "BucketOwnerEnforced"


def test_bucket_is_encrypted_with_a_rotated_kms_key(tf: dict[str, list[Any]]) -> None:
    sse = _resource(tf, "aws_s3_bucket_server_side_encryption_configuration.artifacts")
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert _unquote(default["sse_algorithm"]) == "aws:kms"
    assert default["kms_master_key_id"] == "${aws_kms_key.artifacts.arn}"
    assert _resource(tf, "aws_kms_key.artifacts")["enable_key_rotation"] is True


def test_incomplete_multipart_uploads_are_aborted(tf: dict[str, list[Any]]) -> None:
    lifecycle = _resource(tf, "aws_s3_bucket_lifecycle_configuration.artifacts")
    rules = [r for r in lifecycle["rule"] if "abort_incomplete_multipart_upload" in r]
    assert len(rules) == 1
    assert _unquote(rules[0]["status"]) == "Enabled"
    abort = rules[0]["abort_incomplete_multipart_upload"][0]
    assert abort["days_after_initiation"] == "${var.abort_incomplete_multipart_upload_days}"


def test_bucket_policy_refuses_plain_http(tf: dict[str, list[Any]]) -> None:
    document = _resource(tf, "aws_iam_policy_document.bucket", kind="data")
    denies = [s for s in document["statement"] if _unquote(s["effect"]) == "Deny"]
    condition = denies[0]["condition"][0]
    assert _unquote(condition["variable"]) == "aws:SecureTransport"
    assert [_unquote(v) for v in condition["values"]] == ["false"]


ELLIPTIO_MAY = {
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:PutObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
    "kms:Decrypt",
    "kms:GenerateDataKey",
}


def test_elliptio_iam_policy_is_least_privilege(tf: dict[str, list[Any]]) -> None:
    document = _resource(tf, "aws_iam_policy_document.elliptio", kind="data")
    allowed: set[str] = set()
    denied: set[str] = set()
    for statement in document["statement"]:
        actions = {_unquote(a) for a in statement["actions"]}
        assert not any("*" in a for a in actions), statement
        if _unquote(statement["effect"]) == "Allow":
            allowed |= actions
            assert "not_actions" not in statement
            assert "not_resources" not in statement
        else:
            denied |= actions
            resources = {_unquote(r) for r in statement["resources"]}
            assert "${aws_s3_bucket.artifacts.arn}/*" in resources
    assert allowed <= ELLIPTIO_MAY, allowed - ELLIPTIO_MAY
    assert not any("Delete" in a or "Bypass" in a or "Retention" in a for a in allowed)
    assert {
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:BypassGovernanceRetention",
        "s3:PutObjectRetention",
    } <= denied

    objects = [s for s in document["statement"] if "s3:PutObject" in str(s["actions"])]
    assert [_unquote(r) for r in objects[0]["resources"]] == [
        "${aws_s3_bucket.artifacts.arn}/${var.storage_prefix}/*"
    ]
    policy = _resource(tf, "aws_iam_policy.elliptio")
    assert policy["policy"] == "${data.aws_iam_policy_document.elliptio.json}"


def test_secret_variables_are_sensitive_and_have_no_default(tf: dict[str, list[Any]]) -> None:
    variables = _named(tf, "variable")
    secret = {n: v for n, v in variables.items() if SECRET_NAME.search(n)}
    assert "database_password" in secret
    for name, variable in secret.items():
        assert variable.get("sensitive") is True, name
        assert "default" not in variable, name
    user = _resource(tf, "mongodbatlas_database_user.elliptio")
    assert user["password"] == "${var.database_password}"


def test_outputs_give_the_elliptio_settings_and_hide_secrets(tf: dict[str, list[Any]]) -> None:
    variables = _named(tf, "variable")
    tainted = {f"var.{n}" for n, v in variables.items() if v.get("sensitive") is True}
    local_values = _locals(tf)
    changed = True
    while changed:  # locals built from a secret are secret too
        changed = False
        for name, expression in local_values.items():
            if f"local.{name}" not in tainted and any(t in str(expression) for t in tainted):
                tainted.add(f"local.{name}")
                changed = True
    assert "local.catalog_url" in tainted

    outputs = _named(tf, "output")
    assert {"elliptio_storage_url", "elliptio_storage_options", "elliptio_catalog_url"} <= set(
        outputs
    )
    for name, output in outputs.items():
        if any(re.search(rf"{re.escape(t)}\b", str(output["value"])) for t in tainted):
            assert output.get("sensitive") is True, f"output {name} leaks a secret"
    assert outputs["elliptio_catalog_url"]["sensitive"] is True


def test_credentials_are_never_read_from_files(tf: dict[str, list[Any]]) -> None:
    inline = {"access_key", "secret_key", "public_key", "private_key", "client_secret", "token"}
    for name, provider in _named(tf, "provider").items():
        assert not inline & set(provider), f"provider {name} has inline credentials"
        assert "shared_credentials_files" not in provider
    for path in TERRAFORM_DIR.glob("*.tf"):
        assert not re.search(r"\bfile\(", path.read_text()), path.name
    example = (TERRAFORM_DIR / "terraform.tfvars.example").read_text()
    assert not re.search(r"^\s*\w*(password|secret)\w*\s*=", example, re.IGNORECASE | re.M)


def test_database_user_can_only_read_and_write_the_elliptio_database(
    tf: dict[str, list[Any]],
) -> None:
    user = _resource(tf, "mongodbatlas_database_user.elliptio")
    assert _unquote(user["auth_database_name"]) == "admin"
    roles = [(_unquote(r["role_name"]), r["database_name"]) for r in user["roles"]]
    assert roles == [("readWrite", "${var.database_name}")]
    scopes = [(_unquote(s["type"]), s["name"]) for s in user["scopes"]]
    assert scopes == [("CLUSTER", "${mongodbatlas_advanced_cluster.elliptio.name}")]


def test_providers_are_pinned(tf: dict[str, list[Any]]) -> None:
    (settings,) = tf["terraform"]
    (providers,) = settings["required_providers"]
    for name in ("aws", "mongodbatlas"):
        assert _unquote(providers[name]["version"]).startswith("~> "), name


# ------------------------------------------------------------------ indexer ---

INDEXER_MAY = {
    "s3:GetObject",
    "kms:Decrypt",
    "secretsmanager:GetSecretValue",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}


def test_s3_announces_only_new_sidecars_under_the_store_to_the_indexer(
    tf: dict[str, list[Any]],
) -> None:
    notification = _resource(tf, "aws_s3_bucket_notification.indexer")
    (target,) = notification["lambda_function"]
    assert [_unquote(e) for e in target["events"]] == ["s3:ObjectCreated:*"]
    assert _unquote(target["filter_suffix"]) == ".elliptio/metadata.json"
    assert _unquote(target["filter_prefix"]) == "${var.storage_prefix}/"
    assert target["lambda_function_arn"] == "${aws_lambda_function.indexer[0].arn}"
    permission = _resource(tf, "aws_lambda_permission.indexer")
    assert _unquote(permission["principal"]) == "s3.amazonaws.com"
    assert permission["source_arn"] == "${aws_s3_bucket.artifacts.arn}"
    assert "source_account" in permission


def test_the_indexer_role_only_reads_objects_under_the_store(tf: dict[str, list[Any]]) -> None:
    document = _resource(tf, "aws_iam_policy_document.indexer", kind="data")
    allowed: set[str] = set()
    for statement in document["statement"]:
        assert _unquote(statement["effect"]) == "Allow"
        actions = {_unquote(a) for a in statement["actions"]}
        assert not any("*" in a for a in actions), statement
        resources = [_unquote(r) for r in statement["resources"]]
        assert not any(r in ("*", "${aws_s3_bucket.artifacts.arn}/*") for r in resources)
        if "s3:GetObject" in actions:
            assert resources == ["${aws_s3_bucket.artifacts.arn}/${var.storage_prefix}/*"]
        allowed |= actions
    assert allowed == INDEXER_MAY
    trust = _resource(tf, "aws_iam_policy_document.indexer_assume", kind="data")
    (principal,) = trust["statement"][0]["principals"]
    assert [_unquote(i) for i in principal["identifiers"]] == ["lambda.amazonaws.com"]


def test_the_indexer_gets_the_catalog_password_from_secrets_manager_only(
    tf: dict[str, list[Any]],
) -> None:
    function = _resource(tf, "aws_lambda_function.indexer")
    (environment,) = function["environment"]
    variables = environment["variables"]
    assert set(variables) == {"ELLIPTIO_STORAGE_URL", "ELLIPTIO_CATALOG_SECRET_ARN"}
    secrets = ("local.catalog_url", "var.database_password", "mongodb")
    assert not any(s in str(v) for v in variables.values() for s in secrets)
    version = _resource(tf, "aws_secretsmanager_secret_version.catalog_url")
    assert version["secret_string"] == "${local.catalog_url}"
    assert _unquote(function["handler"]) == "indexer.handler"
    assert "reserved_concurrent_executions" in function


def test_the_indexer_handler_calls_index_event() -> None:
    source = (TERRAFORM_DIR / "indexer" / "indexer.py").read_text()
    compile(source, "indexer.py", "exec")
    assert "eio.index_event(event, HANDLER)" in source
    assert "ELLIPTIO_CATALOG_SECRET_ARN" in source
