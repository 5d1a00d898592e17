// Fails when the committed API client types are not what src/api/openapi.json generates today,
// so a change to the API that skipped `make client` fails the tests.
import { readFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";

const document = new URL("../src/api/openapi.json", import.meta.url);
const committed = new URL("../src/api/schema.d.ts", import.meta.url);
const fresh = astToString(await openapiTS(document));
const banner = readFileSync(committed, "utf8");
if (!banner.endsWith(fresh)) {
  console.error("web/src/api/schema.d.ts is stale: run `make client` and commit the result.");
  process.exit(1);
}
