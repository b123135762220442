// Validates custom resources with validators generated from their upstream CRDs.
//
// stdin: JSON documents (one array of objects, or objects one after another). Every object of a
// kind below is validated; an object of any other kind is an error (so a new custom kind gets a
// validator before it passes). Prints one line per invalid object, "<kind>/<name>: <error>", and
// exits 1 if there is any; exits 0 and prints "ok <n>" otherwise.
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";

const MODELS = {
  "gateway.networking.k8s.io/v1/HTTPRoute": HTTPRoute,
  "networking.istio.io/v1/DestinationRule": DestinationRule,
  "networking.istio.io/v1/VirtualService": VirtualService,
};

function documents(text) {
  // One JSON value, or several separated by whitespace (JSON lines).
  const trimmed = text.trim();
  if (!trimmed) return [];
  try {
    const value = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  } catch {
    return trimmed.split(/\n+/).filter((line) => line.trim()).map((line) => JSON.parse(line));
  }
}

function message(error) {
  // @kubernetes-models/validate throws an error whose `errors` are ajv's; name each failing path.
  const details = Array.isArray(error?.errors) ? error.errors : [];
  if (details.length) {
    return details.map((e) => `${e.instancePath || "(root)"} ${e.message}`).join("; ");
  }
  return String(error?.message ?? error).replace(/\s+/g, " ");
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
let objects;
try {
  objects = documents(Buffer.concat(chunks).toString("utf8"));
} catch (error) {
  console.log(`(input): not JSON: ${error.message}`);
  process.exit(2);
}

const invalid = [];
for (const obj of objects) {
  const label = `${obj?.kind ?? "(no kind)"}/${obj?.metadata?.name ?? "(no name)"}`;
  const Model = MODELS[`${obj?.apiVersion}/${obj?.kind}`];
  if (!Model) {
    invalid.push(`${label}: no validator for apiVersion ${obj?.apiVersion} kind ${obj?.kind}; ` +
      `known: ${Object.keys(MODELS).join(", ")}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (error) {
    invalid.push(`${label}: ${message(error)}`);
  }
}
for (const line of invalid) console.log(line);
if (invalid.length) process.exit(1);
console.log(`ok ${objects.length}`);
