"""AWS Lambda handler: index the elliptio sidecars that S3 announces.

The function's environment holds ELLIPTIO_STORAGE_URL and the ARN of the secret
with the catalog URL; its role may read objects under the store's prefix only.
"""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

import elliptio as eio


def _catalog_url() -> str:
    secret = boto3.client("secretsmanager").get_secret_value(
        SecretId=os.environ["ELLIPTIO_CATALOG_SECRET_ARN"]
    )
    return str(secret["SecretString"])


# Built once per container: later invocations reuse its catalog connection.
HANDLER = eio.Handler(catalog=_catalog_url())


def handler(event: dict[str, Any], context: Any) -> dict[str, list[str]]:
    report = eio.index_event(event, HANDLER)
    attention = {k: report[k] for k in ("conflicting", "unreadable", "refused") if report[k]}
    if attention:
        print(json.dumps({"elliptio_indexer_attention": attention}))
    return report
