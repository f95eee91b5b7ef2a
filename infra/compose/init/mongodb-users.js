// Creates or updates elliptio's MongoDB users. Run by the mongodb-init service as
// the root user; idempotent, so every `docker compose up` re-applies it (a
// password changed in .env takes effect on the next `up`).
//
//   elliptio       readWrite on ELLIPTIO_MONGODB_DATABASE only (the catalog)
//   metabase       read on ELLIPTIO_MONGODB_DATABASE only (dashboards)
//   elliptio_test  readWrite + dbAdmin on ELLIPTIO_TEST_MONGODB_DATABASE only

function env(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is empty: set it in infra/compose/.env (see .env.example)`);
  }
  return value;
}

const admin = db.getSiblingDB("admin");
admin.auth(env("MONGO_ROOT_USERNAME"), env("MONGO_ROOT_PASSWORD"));

const catalogDb = env("ELLIPTIO_MONGODB_DATABASE");
const testDb = env("ELLIPTIO_TEST_MONGODB_DATABASE");
if (catalogDb === testDb) {
  throw new Error("ELLIPTIO_TEST_MONGODB_DATABASE must differ from ELLIPTIO_MONGODB_DATABASE");
}

function upsertUser(user, pwd, roles) {
  if (admin.getUser(user) === null) {
    admin.createUser({ user, pwd, roles });
    print(`created MongoDB user ${user}`);
  } else {
    admin.updateUser(user, { pwd, roles });
    print(`updated MongoDB user ${user}`);
  }
}

upsertUser(env("ELLIPTIO_MONGODB_USERNAME"), env("ELLIPTIO_MONGODB_PASSWORD"), [
  { role: "readWrite", db: catalogDb },
]);
upsertUser("metabase", env("METABASE_MONGODB_PASSWORD"), [{ role: "read", db: catalogDb }]);
upsertUser("elliptio_test", env("ELLIPTIO_TEST_MONGODB_PASSWORD"), [
  { role: "readWrite", db: testDb },
  { role: "dbAdmin", db: testDb },
]);
