"""Tests for `elliptio._redact`: argv, URL and text redaction."""

from __future__ import annotations

import pytest

from elliptio._redact import MASK, is_secret_name, redact_argv, redact_text, redact_url

SECRET_NAMES = [
    "password",
    "PASSWORD",
    "db_password",
    "passwd",
    "pwd",
    "secret",
    "client-secret",
    "token",
    "GITHUB_TOKEN",
    "key",
    "api-key",
    "apikey",
    "api_key",
    "API.Key",
    "access_key",
    "aws-secret-access-key",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "private",
    "private_key",
    "keyboard",  # contains "key": masked on purpose, see the module docstring
    "authMechanismProperties",
    "passphrase",  # a key file's (ssh, sftp, PKCS#12); `elliptio config` showed it
    "ssh_passphrase",
    "passcode",
]

PUBLIC_NAMES = [
    "epochs",
    "lr",
    "batch-size",
    "output",
    "uri",
    "url",
    "user",
    "username",
    "author",
    "authority",
    "authSource",
    "authMechanism",
    "p",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)
    assert is_secret_name(f"--{name}")


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_public_names(name: str) -> None:
    assert not is_secret_name(name)


ARGV_CASES: list[tuple[list[str], list[str]]] = [
    # option=value
    (["--password=hunter2"], ["--password=***"]),
    (["--api-key=abc123"], ["--api-key=***"]),
    (["--apikey=abc123"], ["--apikey=***"]),
    (["--API_KEY=abc123"], ["--API_KEY=***"]),
    (["--db-passwd=x"], ["--db-passwd=***"]),
    (["--pwd=x"], ["--pwd=***"]),
    (["--client-secret=x"], ["--client-secret=***"]),
    (["--hf-token=x"], ["--hf-token=***"]),
    (["--credentials=x"], ["--credentials=***"]),
    (["--auth=x"], ["--auth=***"]),
    (["--private-key=x"], ["--private-key=***"]),
    (["--access_key=x"], ["--access_key=***"]),
    (["-password=x"], ["-password=***"]),
    (["-Ddb.password=x"], ["-Ddb.password=***"]),
    (["--password="], ["--password="]),
    # option value
    (["--password", "hunter2"], ["--password", MASK]),
    (["--aws-secret-access-key", "abc/def+"], ["--aws-secret-access-key", MASK]),
    (["--token", "-starts-with-dash"], ["--token", MASK]),
    (["-password", "x"], ["-password", MASK]),
    (["--keyboard-layout", "us"], ["--keyboard-layout", MASK]),
    # a secret-named flag followed by another option masks nothing
    (["--use-auth", "--epochs", "10"], ["--use-auth", "--epochs", "10"]),
    (["--token", "--password", "x"], ["--token", "--password", MASK]),
    (["train.py", "--password"], ["train.py", "--password"]),
    # NAME=value
    (["PASSWORD=x"], ["PASSWORD=***"]),
    (["AWS_SECRET_ACCESS_KEY=abc"], ["AWS_SECRET_ACCESS_KEY=***"]),
    (["db.password=x"], ["db.password=***"]),
    (["+db.password=x"], ["+db.password=***"]),
    (["++trainer.api_key=x"], ["++trainer.api_key=***"]),
    (["docker", "run", "-e", "TOKEN=abc", "img"], ["docker", "run", "-e", "TOKEN=***", "img"]),
    # header arguments
    (["-H", "Authorization: Bearer abc"], ["-H", "Authorization: ***"]),
    (["-H", "X-API-Key:abc"], ["-H", "X-API-Key:***"]),
    (["-H", "Accept: text/plain"], ["-H", "Accept: text/plain"]),
    # an option whose value is itself a header or an assignment (helper-64)
    (["--header=Authorization: Bearer abc"], ["--header=Authorization: ***"]),
    (
        ["--conf=spark.hadoop.fs.s3a.secret.key=abc", "--conf=spark.executor.cores=2"],
        ["--conf=spark.hadoop.fs.s3a.secret.key=***", "--conf=spark.executor.cores=2"],
    ),
    (["--set=db.password=abc", "--set=replicas=3"], ["--set=db.password=***", "--set=replicas=3"]),
    (["-Dfs.s3a.access.key=abc"], ["-Dfs.s3a.access.key=***"]),
    (["--env=A=1"], ["--env=A=1"]),
    # "pass" as a whole part of a name, not inside a word
    (
        ["--pass", "x", "--hydra=db.pass=y", "FTP_PASS=z"],
        ["--pass", "***", "--hydra=db.pass=***", "FTP_PASS=***"],
    ),
    (
        ["--passes=3", "--bypass=1", "--compass", "n"],
        ["--passes=3", "--bypass=1", "--compass", "n"],
    ),
    (["--x=" + "a=" * 2000 + "1"], ["--x=" + "a=" * 2000 + "1"]),  # no recursion limit
    (["--x=" + "a=" * 2000 + "password=1"], ["--x=" + "a=" * 2000 + "password=***"]),
    # a secret assignment in a list, or after a blank, inside an argument
    (["--opts=a=1,password=abc,b=2"], ["--opts=a=1,password=***"]),
    (["--msg", "run with token=abc now"], ["--msg", "run with token=*** now"]),
    (["--env=A=1;SECRET_KEY=abc"], ["--env=A=1;SECRET_KEY=***"]),
    # a secret in a list of assignments holding blanks: masked whole, to the end
    # (the words after the blank were kept)
    (
        ["--conn", "Server=x;User Id=u;Password=SEK RIT;Database=d"],
        ["--conn", "Server=x;User Id=u;Password=***"],
    ),
    (["--opts=a=1,password=SEK RIT"], ["--opts=a=1,password=***"]),
    (["'Server=x;Pwd=SEK RIT'"], ["'Server=x;Pwd=***'"]),
    (
        ["bash", "-c", "tool --opts='a=1,password=SEK RIT' x"],
        ["bash", "-c", "tool --opts='a=1,password=***' x"],
    ),
    (
        ["Data Source=mongodb://u:SEK RIT@h/db;Initial Catalog=c"],
        ["Data Source=mongodb://u:***@h/db;Initial Catalog=c"],
    ),
    # a signature in a list (an Azure SAS connection string), a value with a
    # comma (Server=tcp:host,1433) before the secret (helper-75)
    (
        [
            "--conn",
            "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=S",
        ],
        ["--conn", "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=***"],
    ),
    (
        ["--conn=Server=tcp:db.example.net,1433;User ID=u;Password=SEK RIT;Encrypt=True"],
        ["--conn=Server=tcp:db.example.net,1433;User ID=u;Password=***"],
    ),
    (["hosts=a,b;password=SEK RIT"], ["hosts=a,b;password=***"]),
    # a signature joined by "&" (a SAS token as an argument, helper-78)
    (["--sas=sv=2020&ss=b&sig=SIGX"], ["--sas=sv=2020&ss=b&sig=***"]),
    # what follows a comma in a value is redacted with it (helper-77: URLs and
    # command words there were kept), and signature_version is no signature
    (["a=1,b=2,mongodb://u:SECRET@h/db"], ["a=1,b=2,mongodb://u:***@h/db"]),
    (["--db=a=1,url=postgresql://u:pa,ss@h/db"], ["--db=a=1,url=postgresql://u:***@h/db"]),
    (["a=1,b=2,c --token SECRET"], ["a=1,b=2,c --token ***"]),
    (["--hosts=a=1,b=2,s3://KEY:SEC/RET@bucket"], ["--hosts=a=1,b=2,s3://KEY:***@bucket"]),
    (
        ["--s3=region=eu-west-1,signature_version=s3v4,addressing_style=path"],
        ["--s3=region=eu-west-1,signature_version=s3v4,addressing_style=path"],
    ),
    # a list whose values are not secret keeps them, each redacted as a value
    (["a=1,b=run --token abc"], ["a=1,b=run --token ***"]),
    (["--input=/data/a,b.csv", "x=1, y=2"], ["--input=/data/a,b.csv", "x=1, y=2"]),
    # an argument that is a command line: its words as arguments, one level deep
    (
        ["--extra-args=--epochs 3 --password abc --lr=0.1"],
        ["--extra-args=--epochs 3 --password *** --lr=0.1"],
    ),
    (
        ["bash", "-c", "curl -H 'Authorization: Bearer abc' -d \"--token=xyz\" h"],
        ["bash", "-c", "curl -H 'Authorization: ***' -d \"--token=***\" h"],
    ),
    (["-c", 'tool --api-key "a b" --n 2'], ["-c", 'tool --api-key "***" --n 2']),
    (["--note", "a 'b c' \"d"], ["--note", "a 'b c' \"d"]),  # no secret: as written
    # a quoted or escaped value with blanks is masked whole (helper-70)
    (
        ["bash", "-c", 'tool --password="correct horse staple" --n 2'],
        ["bash", "-c", "tool --password=*** --n 2"],
    ),
    (["bash", "-c", 'export API_KEY="abc def"; run'], ["bash", "-c", "export API_KEY=*** run"]),
    (["bash", "-c", "tool --password='a b'"], ["bash", "-c", "tool --password=***"]),
    (["bash", "-c", "tool --password a\\ b c"], ["bash", "-c", "tool --password *** c"]),
    (["--tokenizerpass", "x"], ["--tokenizerpass", "***"]),
    # counts of tokens and tokenizers are no secrets; "tokens" alone is
    (
        ["--max-new-tokens", "512", "--tokenizer", "bert", "--gen=max_tokens=9"],
        ["--max-new-tokens", "512", "--tokenizer", "bert", "--gen=max_tokens=9"],
    ),
    (["--tokens", "abc", "--hf-token", "def"], ["--tokens", "***", "--hf-token", "***"]),
    # URLs anywhere in an element
    (["mongodb://u:p@h/db"], ["mongodb://u:***@h/db"]),
    (["--uri=mongodb://u:p@h"], ["--uri=mongodb://u:***@h"]),
    (
        ["--uri", "mongodb+srv://u:p@cluster.example.net/db"],
        ["--uri", "mongodb+srv://u:***@cluster.example.net/db"],
    ),
    (["CATALOG=mongodb://u:p@h/db"], ["CATALOG=mongodb://u:***@h/db"]),
    (["see=postgresql://u:p@h/db,x"], ["see=postgresql://u:***@h/db,x"]),
    (["copy s3://b/k?token=abc to x"], ["copy s3://b/k?token=*** to x"]),
    (["https://h/x?a=1&access_token=abc"], ["https://h/x?a=1&access_token=***"]),
    # a URL that is the whole argument: its whole password, whatever it holds
    (["--db", "mongodb://u:pa ss@h/db"], ["--db", "mongodb://u:***@h/db"]),
    (["mongodb://u:p#ss@h/db?authSource=a"], ["mongodb://u:***@h/db?authSource=a"]),
    (["--uri=mongodb://u:p?ss@h/db"], ["--uri=mongodb://u:***@h/db"]),
    # JSON text: the secrets of the options it holds
    (['{"key": "AKIA1", "secret": "s3cr3t"}'], ['{"key": "***", "secret": "***"}']),
    (['--opts={"password":"hunter22"}'], ['--opts={"password": "***"}']),
    (["--o", '["--token", "abcdef"]'], ["--o", '["--token", "***"]']),
    (['--cfg={"lr": 0.1, "a": [1]}'], ['--cfg={"lr": 0.1, "a": [1]}']),  # left as written
    # ordinary arguments stay as they are
    (["python", "train.py", "--epochs", "10"], ["python", "train.py", "--epochs", "10"]),
    (["https://host:8080/x?email=a@b.com"], ["https://host:8080/x?email=a@b.com"]),
    (["-p", "8080", "-k", "x"], ["-p", "8080", "-k", "x"]),
    (["data/keys.csv", "secret_dir/file.txt"], ["data/keys.csv", "secret_dir/file.txt"]),
    (["--author", "andy", "--lr=0.1"], ["--author", "andy", "--lr=0.1"]),
    (["--url=https://example.com/a?b=c"], ["--url=https://example.com/a?b=c"]),
    (["ssh://git@github.com/o/r.git"], ["ssh://git@github.com/o/r.git"]),
    (["-1", "--", "x=1"], ["-1", "--", "x=1"]),
    ([], []),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_redact_argv(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_redact_argv_returns_new_list() -> None:
    argv = ["--password", "x"]
    assert redact_argv(tuple(argv)) == ["--password", MASK]
    assert argv == ["--password", "x"]


URL_CASES: list[tuple[str, str]] = [
    ("mongodb://u:p@h/db", "mongodb://u:***@h/db"),
    # AWS secret keys may hold "/"; a port before a path holding "@" is no password.
    ("s3://AKIAKEY:ab/cdSECRET+x@bucket/x", "s3://AKIAKEY:***@bucket/x"),
    ("http://localhost:9000/bucket/file@2x.png", "http://localhost:9000/bucket/file@2x.png"),
    (
        "mongodb://u:p@ss@h1:27017,h2/db?replicaSet=rs",
        "mongodb://u:***@h1:27017,h2/db?replicaSet=rs",
    ),
    ("mongodb://u:p@h/db?authSource=admin", "mongodb://u:***@h/db?authSource=admin"),
    (
        "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:abc",
        "mongodb://h/?authMechanism=MONGODB-AWS&authMechanismProperties=***",
    ),
    ("https://user:pa%40ss@host/path", "https://user:***@host/path"),
    ("https://ghp_abcdef@github.com/o/r.git", "https://***@github.com/o/r.git"),
    ("https://x-access-token:ghs_abc@github.com/o/r", "https://x-access-token:***@github.com/o/r"),
    ("https://ghp_abcdef:x-oauth-basic@github.com/o/r", "https://***@github.com/o/r"),
    ("https://ghp_abcdef:@github.com/o/r", "https://***@github.com/o/r"),
    ("https://h/x?token=abc", "https://h/x?token=***"),
    ("https://h/x?jwt=abc&v=1", "https://h/x?jwt=***&v=1"),  # a JSON Web Token
    ("https://h/x?a=1&TOKEN=abc&b=2", "https://h/x?a=1&TOKEN=***&b=2"),
    (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIA%2F20240101%2Fus-east-1&X-Amz-Signature=abcd"
        "&X-Amz-Security-Token=tok&X-Amz-Expires=3600",
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=***&X-Amz-Signature=***"
        "&X-Amz-Security-Token=***&X-Amz-Expires=3600",
    ),
    (
        "https://a.blob.core.windows.net/c/b?sv=2022&sig=abc%3D",
        "https://a.blob.core.windows.net/c/b?sv=2022&sig=***",
    ),
    ("https://h/x?Signature=abc&Expires=1", "https://h/x?Signature=***&Expires=1"),
    ("https://h/cb#access_token=abc&state=1", "https://h/cb#access_token=***&state=1"),
    ("https://h/x?api_key=abc#frag", "https://h/x?api_key=***#frag"),
    ("bucket/key?token=abc", "bucket/key?token=***"),
    # path parameters
    ("https://h/x;token=abc", "https://h/x;token=***"),
    ("https://h/a;b/c;jsessionid=1?sig=abc", "https://h/a;b/c;jsessionid=1?sig=***"),
    ("s3://b/path;key=abc/part.parquet", "s3://b/path;key=***/part.parquet"),
    # unchanged
    ("https://example.com/a/b?x=1&page=2", "https://example.com/a/b?x=1&page=2"),
    ("https://host:8080/x?email=a@b.com", "https://host:8080/x?email=a@b.com"),
    ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
    ("mongodb://user@h/db", "mongodb://user@h/db"),
    ("s3://bucket/2024/01/02/andy/x.csv", "s3://bucket/2024/01/02/andy/x.csv"),
    ("git@github.com:o/r.git", "git@github.com:o/r.git"),
    ("https://h/x?token=", "https://h/x?token="),
    ("", ""),
]


@pytest.mark.parametrize(("url", "expected"), URL_CASES)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(("url", "expected"), URL_CASES)
def test_redact_url_is_idempotent(url: str, expected: str) -> None:
    assert redact_url(expected) == expected


def test_redact_text_masks_known_secrets() -> None:
    text = "auth failed for user andy with password hunter2 (token hunter2-long)"
    assert redact_text(text, ["hunter2", "hunter2-long", "abc", ""]) == (
        "auth failed for user andy with password *** (token ***)"
    )


def test_redact_text_ignores_short_secrets_and_regex_characters() -> None:
    assert redact_text("a b c", ["a", "ab"]) == "a b c"
    assert redact_text("x p.s+ y p_s+", ["p.s+"]) == "x *** y p_s+"
    assert redact_text("nothing", []) == "nothing"
    assert redact_text("once ONCE", iter(["once"])) == "*** ONCE"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mongodb://u:pa ss@h:1/db", "mongodb://u:***@h:1/db"),
        ("mongodb://u:p#ss@h/db", "mongodb://u:***@h/db"),
        ("mongodb://u:p?ss@h/db?authSource=admin", "mongodb://u:***@h/db?authSource=admin"),
        ("mongodb://u:a b@h/db?x=mongodb://a", "mongodb://u:***@h/db?x=mongodb://a"),
        ("s3://KEY:SE/CR ET@bucket/x", "s3://KEY:***@bucket/x"),
        ("https://host:8443/x@y", "https://host:8443/x@y"),  # a port, not a password
        # so on every scheme whose paths may hold "@" (helper-75)
        ("sftp://host:22/home/me/icon@2x.png", "sftp://host:22/home/me/icon@2x.png"),
        ("hdfs://namenode:8020/user/me@corp/x.csv", "hdfs://namenode:8020/user/me@corp/x.csv"),
        ("s3://KEY:2024/secret@bucket/x", "s3://KEY:***@bucket/x"),
        ("sftp://u:/pw@host/x", "sftp://u:***@host/x"),  # no port: a password
        # a path has no authority: "10:30/" is no password (helper-77)
        (
            "/data/2024-01-01T10:30/user@example.com.csv",
            "/data/2024-01-01T10:30/user@example.com.csv",
        ),
        ("file:///data/10:30/user@example.com.csv", "file:///data/10:30/user@example.com.csv"),
        ("mongodb:/u:2024/pw@h", "mongodb:/u:***@h"),
        # a mistyped URL of any scheme, or none, still has its password masked;
        # a local path has no userinfo at all (helper-78)
        ("mongdb:/u:2024/pw@h/db", "mongdb:/u:***@h/db"),
        ("u:2024/pw@h:27017/db", "u:***@h:27017/db"),
        ("s3:/AKIAKEY:12/34SECRET@bucket/lake", "s3:/AKIAKEY:***@bucket/lake"),
        (
            "/data/snap_2024-01-01T10:30:00@node1.parquet",
            "/data/snap_2024-01-01T10:30:00@node1.parquet",
        ),
        ("data/10:30/a@b.txt", "data/10:30/a@b.txt"),
        ("//u:pw@h/db", "//u:***@h/db"),  # a URL missing its scheme is no path
        ("C:\\Users\\me\\a:b@c.txt", "C:\\Users\\me\\a:b@c.txt"),
        # elsewhere digits and "/" before an "@" start a password (helper-73)
        ("mongodb://u:2024/pw@h/db", "mongodb://u:***@h/db"),
        ("memory://u:2024/pw@lake", "memory://u:***@lake"),
        ("s3://bucket/a:b@c/x", "s3://bucket/a:b@c/x"),  # a path
    ],
)
def test_a_whole_url_has_its_whole_password_masked(url: str, expected: str) -> None:
    from elliptio._redact import has_credentials, known_secrets

    assert redact_url(url, whole=True) == expected
    assert has_credentials(url) == (expected != url)
    assert bool(known_secrets([url])) == (expected != url)


@pytest.mark.parametrize(
    "text",
    [
        "gs://bucket: caller svc@proj.iam.gserviceaccount.com lacks storage.objects.get",
        "https://host:8443: cert for admin@corp is expired",
    ],
)
def test_messages_that_start_with_a_url_are_not_masked_beyond_it(text: str) -> None:
    assert redact_url(text) == text


def test_ordinary_session_arguments_are_kept_in_argv() -> None:
    """Masking 'session' hid --session-dir and --num_sessions=3 (helper-39)."""
    from elliptio._redact import redact_argv

    assert redact_argv(["t.py", "--session-dir", "runs", "--num_sessions=3"]) == [
        "t.py", "--session-dir", "runs", "--num_sessions=3",
    ]  # fmt: skip


def test_a_masked_query_keeps_the_quote_that_closes_a_url_in_a_message() -> None:
    """A URL shown as repr in an error lost its closing quote to the masked value
    (helper-51); a quote inside the value is still masked with it."""
    url = "https://h/x.csv?X-Amz-Signature=abcdef&X-Amz-Credential=zz"
    assert redact_url(f"cannot read {url!r}: gone") == (
        "cannot read 'https://h/x.csv?X-Amz-Signature=***&X-Amz-Credential=***': gone"
    )
    assert redact_url(repr("https://h/x?token=ab'cd")) == '"https://h/x?token=***"'
    assert "cd" not in redact_url("https://h/x?token=ab'cd', then")
    # A quote inside the value, then punctuation, then more of it (helper-53).
    for tail in ("'.T41L", "')T41L", "':T41L", '",T41L'):
        for whole in (False, True):
            assert "T41L" not in redact_url(f"https://h/x?token=S3CR3T{tail}&x=2", whole=whole)
        assert "T41L" not in redact_url(f"read https://h/x?token=S3CR3T{tail}")


def test_a_bearer_token_option_is_masked() -> None:
    """``--bearer TOKEN`` was recorded as given (helper-51)."""
    assert is_secret_name("--bearer")
    assert "tok123" not in " ".join(redact_argv(["serve.py", "--bearer", "tok123"]))
    assert "tok123" not in redact_url("https://h/api?bearer=tok123")


def test_the_secrets_collected_are_those_the_redaction_masks() -> None:
    """known_secrets (which masks them in every message) takes a secret given as an
    option's value too, as redact_argv and redact_options mask it."""
    from elliptio._redact import known_secrets, redact_options

    options = {"extra": "--conf=fs.s3a.secret.key=S3CR3T", "h": "--header=Authorization: B X"}
    assert {"S3CR3T", "B X"} <= known_secrets([], options)
    assert "S3CR3T" not in str(redact_options(options))
    assert "B X" not in str(redact_options(options))
    # a secret in a list of assignments, blanks and all (only "SEK" was taken)
    options = {"a": "Server=x;Password=SEK RIT;Database=d", "b": "--opts='a=1,token=TOK EN'"}
    assert {"SEK RIT;Database=d", "TOK EN"} <= known_secrets([], options)
    assert "RIT" not in str(redact_options(options))
    assert "EN" not in str(redact_options(options))
    # a quoted value with blanks in a libpq DSN: masked whole (helper-73)
    options = {"dsn": "host=db user=u password='correct horse battery' dbname=x"}
    assert "correct horse battery" in known_secrets([], options)
    assert redact_options(options) == {"dsn": "host=db user=u password=*** dbname=x"}
    assert "horse" not in redact_text(str(options), known_secrets([], options))


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        # a user option's value is a credential pair: masked whole (curl, wget, httpie)
        (["curl", "-u", "bob:hunter22", "h"], ["curl", "-u", MASK, "h"]),
        (["curl", "-ubob:hunter22", "h"], ["curl", f"-u{MASK}", "h"]),
        (["curl", "--user=bob:hunter22"], ["curl", f"--user={MASK}"]),
        (["curl", "--user", "sk_live_abc:", "h"], ["curl", "--user", MASK, "h"]),
        (["curl", "--proxy-user", "bob:hunter22"], ["curl", "--proxy-user", MASK]),
        (["curl", "-U", "bob:hunter22"], ["curl", "-U", MASK]),
        (["bash", "-c", "curl -u bob:hunter22 h"], ["bash", "-c", f"curl -u {MASK} h"]),
        # a user name alone, a path or a URL after -u is kept
        (["mysql", "-uroot", "-u", "andy"], ["mysql", "-uroot", "-u", "andy"]),
        (["python", "-u", "C:\\x\\train.py"], ["python", "-u", "C:\\x\\train.py"]),
        (
            ["--username", "bob:x", "--user-agent", "a:b"],
            ["--username", "bob:x", "--user-agent", "a:b"],
        ),
        # a password attached to -p after a MySQL client; -p apart is a port or a
        # plugin, and elsewhere -p with something attached is a port, a path or flags
        (["mysql", "-pS3cr3t!", "db"], ["mysql", f"-p{MASK}", "db"]),
        (["bash", "-c", "mysql -uroot -pS3cr3t db"], ["bash", "-c", f"mysql -uroot -p{MASK} db"]),
        (
            ["docker", "exec", "db", "/usr/bin/mysqldump", "-uroot", "-pS3cr3t", "shop"],
            ["docker", "exec", "db", "/usr/bin/mysqldump", "-uroot", f"-p{MASK}", "shop"],
        ),
        (["mariadb", "-pS3cr3t"], ["mariadb", f"-p{MASK}"]),
        # ... and after the other programs whose attached -p is the password
        (["sshpass", "-pS3cr3t", "ssh", "u@h"], ["sshpass", f"-p{MASK}", "ssh", "u@h"]),
        (["/usr/bin/7z", "a", "-pS3cr3t", "x.7z"], ["/usr/bin/7z", "a", f"-p{MASK}", "x.7z"]),
        (["7za.exe", "x", "-pS3cr3t", "x.7z"], ["7za.exe", "x", f"-p{MASK}", "x.7z"]),
        (["unrar", "x", "-pS3cr3t", "x.rar"], ["unrar", "x", f"-p{MASK}", "x.rar"]),
        (["mycli", "-uroot", "-pS3cr3t"], ["mycli", "-uroot", f"-p{MASK}"]),
        (["bash", "-c", "sshpass -pS3cr3t scp f h:"], ["bash", "-c", f"sshpass -p{MASK} scp f h:"]),
        # ... and the password apart from its option where the program documents it so
        (["sshpass", "-p", "S3cr3t", "ssh", "u@h"], ["sshpass", "-p", MASK, "ssh", "u@h"]),
        (["bash", "-c", "sshpass -p S3cr3t ssh h"], ["bash", "-c", f"sshpass -p {MASK} ssh h"]),
        (["zip", "-P", "S3cr3t", "x.zip", "f"], ["zip", "-P", MASK, "x.zip", "f"]),
        (["unzip", "-P", "S3cr3t", "x.zip"], ["unzip", "-P", MASK, "x.zip"]),
        (["rar", "a", "-hpS3cr3t", "x.rar"], ["rar", "a", f"-hp{MASK}", "x.rar"]),
        # ... in a command line given as one argument too (they named no secret word)
        (["bash", "-c", "zip -P S3cr3t x.zip f"], ["bash", "-c", f"zip -P {MASK} x.zip f"]),
        (["sh", "-c", "unzip -P S3cr3t x.zip"], ["sh", "-c", f"unzip -P {MASK} x.zip"]),
        (["sh", "-c", "rar a -hpS3cr3t x.rar"], ["sh", "-c", f"rar a -hp{MASK} x.rar"]),
        (["bash", "-c", "unzip -p x.zip f | wc"],) * 2,
        (["mysql", "-hprod-db", "-pS3cr3t"], ["mysql", "-hprod-db", f"-p{MASK}"]),
        (["ssh", "-p", "22", "u@h", "ls"], ["ssh", "-p", "22", "u@h", "ls"]),
        (["python", "rar.py", "-p8000"], ["python", "rar.py", "-p8000"]),
        (["python", "serve.py", "-p8000"], ["python", "serve.py", "-p8000"]),
        (["pytest", "-pno:cacheprovider", "-pxdist"], ["pytest", "-pno:cacheprovider", "-pxdist"]),
        (["find", ".", "-path", "*/x", "-print"], ["find", ".", "-path", "*/x", "-print"]),
        (["bash", "-c", "mkdir -pv out && perl -pe s/a/b/ f"],) * 2,
        (["pytest", "-p", "no:cacheprovider"], ["pytest", "-p", "no:cacheprovider"]),
        (["ssh", "-p", "22", "h"], ["ssh", "-p", "22", "h"]),
        (["-password", "x", "-pwd=y"], ["-password", MASK, f"-pwd={MASK}"]),
        # a JDBC URL: its whole password, "#" and all
        (["jdbc:postgresql://u:SEC#RET@h/db"], ["jdbc:postgresql://u:***@h/db"]),
        (["--url=jdbc:mysql://u:a/b@c@h:3306/db"], ["--url=jdbc:mysql://u:***@h:3306/db"]),
        # digits and "/" before the "@" of a URL on a command line: a password
        # (over-masked when they were a port and a path holding "@")
        (["https://u:2024/SECRET@h/x"], ["https://u:***@h/x"]),
        # an Oracle login user/password@database, also in a JDBC thin URL
        (["sqlplus", "scott/TIGER@db"], ["sqlplus", "scott/***@db"]),
        (["userid=scott/TIGER@//h:1521/orcl"], ["userid=scott/***@//h:1521/orcl"]),
        (["jdbc:oracle:thin:scott/TIGER@h:1521:orcl"], ["jdbc:oracle:thin:scott/***@h:1521:orcl"]),
        (["data/file.csv", "a/b.txt@"], ["data/file.csv", "a/b.txt@"]),
        # a bearer token given alone
        (["--header-value", "Bearer abc.def"], ["--header-value", "Bearer ***"]),
        # `user:password@host` without a scheme (pip --proxy), `--name:value`, `--pw`
        (["pip", "--proxy", "bob:S3CR3T@proxy:3128"], ["pip", "--proxy", "bob:***@proxy:3128"]),
        (["--proxy=bob:S3:CR3T@proxy"], ["--proxy=bob:***@proxy"]),
        (["git@github.com:o/r.git", "a b:c@d"], ["git@github.com:o/r.git", "a b:c@d"]),
        (["/data/10:30/a@b.csv", "me@host:/x"], ["/data/10:30/a@b.csv", "me@host:/x"]),
        (["--password:S3CR3T", "--lr:0.1"], ["--password:***", "--lr:0.1"]),
        (["--pw", "S3CR3T", "DB_PW=x"], ["--pw", MASK, "DB_PW=***"]),
    ],
)
def test_common_command_line_credentials_are_masked(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


def test_a_long_text_of_quoted_colons_is_redacted_in_linear_time() -> None:
    """The userinfo scan that takes a ":" written "%3A" (93d824f) tried every "%3A"
    of a URL's host part as the end of a user name, each followed by a scan to the
    end of the text: a 48 kB message took 44 s, in the web UI's error pages and
    every log line. It ends at the first ":" or "%3A" again, masking the same."""
    import signal
    import threading

    assert threading.current_thread() is threading.main_thread()

    def too_slow(signum: int, frame: object) -> None:
        raise TimeoutError("the userinfo scan did not finish in linear time")

    text = "no page at /@ a://" + "%3A" * 100_000
    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(20)  # the quadratic scan would take about a quarter of an hour here
    try:
        assert redact_url(text) == text  # no "@" after the quoted colons: no userinfo
        assert redact_url(f"x mongodb://al%3Aice%3APW{'%3A' * 50_000}@h/db") == (
            f"x mongodb://al%3A{MASK}@h/db"
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert redact_url("mongodb://andy%3ASECRET@h/db") == f"mongodb://andy%3A{MASK}@h/db"
    assert redact_url("mongodb://dom%3Auser:pw@h/db") == f"mongodb://dom%3A{MASK}@h/db"
    assert redact_url("mongodb://andy:pw%3Amore@h/db") == f"mongodb://andy:{MASK}@h/db"
