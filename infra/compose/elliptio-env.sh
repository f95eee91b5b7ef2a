#!/bin/sh
# Prints the ELLIPTIO_* settings (as shell exports) that point elliptio at this
# Compose stack, read from .env:
#   eval "$(infra/compose/elliptio-env.sh)"            # in your shell
#   infra/compose/elliptio-env.sh --dotenv >> .env      # for elliptio's own .env
#   infra/compose/elliptio-env.sh --test-uri            # just ELLIPTIO_TEST_MONGODB_URI
# ENV_FILE overrides which file is read (default: .env next to this script).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
env_file=${ENV_FILE:-$here/.env}
[ -r "$env_file" ] || { echo "$env_file not found: run $here/make-env.sh first" >&2; exit 1; }

get() { # get NAME DEFAULT -- value of NAME in the env file (last one wins)
  value=$(sed -n "s/^$1=//p" "$env_file" | tail -n 1)
  printf '%s' "${value:-$2}"
}
need() {
  value=$(get "$1" "")
  [ -n "$value" ] || { echo "$1 is empty in $env_file" >&2; exit 1; }
  case "$value" in *[!A-Za-z0-9._~-]*)
    echo "$1 may only use A-Z a-z 0-9 . _ ~ - (it goes into URLs and JSON unescaped)" >&2
    exit 1
    ;;
  esac
  printf '%s' "$value"
}

db=$(get ELLIPTIO_MONGODB_DATABASE elliptio)
user=$(get ELLIPTIO_MONGODB_USERNAME elliptio)
password=$(need ELLIPTIO_MONGODB_PASSWORD)
test_db=$(get ELLIPTIO_TEST_MONGODB_DATABASE elliptio_test)
test_password=$(need ELLIPTIO_TEST_MONGODB_PASSWORD)
mongo_port=$(get MONGO_PORT 27017)
s3_port=$(get S3_PORT 7070)
bucket=$(get ELLIPTIO_S3_BUCKET elliptio)
prefix=$(get ELLIPTIO_S3_PREFIX lake)
key=$(get ELLIPTIO_S3_ACCESS_KEY elliptio)
s3_secret=$(need ELLIPTIO_S3_SECRET_KEY)

storage_url="s3://$bucket/$prefix"
storage_options="{\"endpoint_url\": \"http://127.0.0.1:$s3_port\", \"key\": \"$key\", \"secret\": \"$s3_secret\", \"client_kwargs\": {\"region_name\": \"us-east-1\"}}"
catalog_url="mongodb://$user:$password@127.0.0.1:$mongo_port/$db?authSource=admin"
test_uri="mongodb://elliptio_test:$test_password@127.0.0.1:$mongo_port/$test_db?authSource=admin"

if [ "${1-}" = "--test-uri" ]; then
  printf '%s\n' "$test_uri"
elif [ "${1-}" = "--dotenv" ]; then
  printf "ELLIPTIO_STORAGE_URL=%s\nELLIPTIO_STORAGE_OPTIONS='%s'\nELLIPTIO_CATALOG_URL=%s\n" \
    "$storage_url" "$storage_options" "$catalog_url"
else
  printf "export ELLIPTIO_STORAGE_URL='%s'\n" "$storage_url"
  printf "export ELLIPTIO_STORAGE_OPTIONS='%s'\n" "$storage_options"
  printf "export ELLIPTIO_CATALOG_URL='%s'\n" "$catalog_url"
  printf "export ELLIPTIO_TEST_MONGODB_URI='%s'\n" "$test_uri"
fi
