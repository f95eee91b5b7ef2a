#!/bin/sh
# First-run setup of Metabase (admin account) and its read-only connection to the
# elliptio catalog. Run by the metabase-init service; idempotent: once Metabase is
# set up it logs in and only adds the catalog connection if it is missing.
set -eu

: "${METABASE_URL:?}" "${METABASE_ADMIN_EMAIL:?}" "${METABASE_ADMIN_PASSWORD:?}"
: "${METABASE_MONGODB_PASSWORD:?}" "${ELLIPTIO_MONGODB_DATABASE:?}"
name="elliptio catalog"

# Secrets go into JSON and a URI unescaped: allow only characters safe in both.
for secret in "$METABASE_ADMIN_PASSWORD" "$METABASE_MONGODB_PASSWORD"; do
  case "$secret" in *[!A-Za-z0-9._~-]*)
    echo "Metabase secrets may only use A-Z a-z 0-9 . _ ~ - (run ./make-env.sh)" >&2
    exit 1
    ;;
  esac
done

api() { # api METHOD PATH [JSON] -- prints the response body, fails on HTTP errors
  url="$METABASE_URL$2"
  body=${3-}
  set -- -fsS -X "$1"
  if [ -n "$session" ]; then set -- "$@" -H "X-Metabase-Session: $session"; fi
  if [ -n "$body" ]; then set -- "$@" -H "Content-Type: application/json" --data "$body"; fi
  curl "$@" "$url"
}
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p"; }

session=""
token=$(api GET /api/session/properties | json_field setup-token)
if [ -n "$token" ]; then
  session=$(api POST /api/setup "{\"token\":\"$token\",\
\"user\":{\"email\":\"$METABASE_ADMIN_EMAIL\",\"password\":\"$METABASE_ADMIN_PASSWORD\",\
\"first_name\":\"elliptio\",\"last_name\":\"admin\",\"site_name\":\"elliptio\"},\
\"prefs\":{\"site_name\":\"elliptio\",\"site_locale\":\"en\",\"allow_tracking\":false}}" | json_field id)
  echo "Metabase set up; admin: $METABASE_ADMIN_EMAIL"
else
  session=$(api POST /api/session "{\"username\":\"$METABASE_ADMIN_EMAIL\",\
\"password\":\"$METABASE_ADMIN_PASSWORD\"}" | json_field id)
fi
[ -n "$session" ] || { echo "could not log in to Metabase as $METABASE_ADMIN_EMAIL" >&2; exit 1; }

if api GET /api/database | grep -q "\"name\":\"$name\""; then
  echo "Metabase already connected to the catalog"
else
  uri="mongodb://metabase:$METABASE_MONGODB_PASSWORD@mongodb:27017/$ELLIPTIO_MONGODB_DATABASE?authSource=admin"
  api POST /api/database "{\"engine\":\"mongo\",\"name\":\"$name\",\
\"details\":{\"use-conn-uri\":true,\"conn-uri\":\"$uri\"}}" >/dev/null
  echo "Metabase connected to the catalog (read-only user 'metabase')"
fi
