// docs/records.md read by the tests that check it: against records a pipeline writes (cli-records.test.ts) and
// against the public record types (records-types.test.ts). A test helper: not exported by the package.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../paths.js';

/** One row of a kind's table: whether the field may be left out, and its `meaning` cell. */
export interface DocumentedField {
  optional: boolean;
  meaning: string;
}

/** docs/records.md's tables: per kind, its fields, and whether each is always there. */
export function documentedFields(): Map<string, Map<string, DocumentedField>> {
  const text = readFileSync(join(packageRoot, 'docs', 'records.md'), 'utf8');
  const kinds = new Map<string, Map<string, DocumentedField>>();
  let current: Map<string, DocumentedField> | undefined;
  for (const line of text.split('\n')) {
    const heading = /^## `([a-z_]+)`$/.exec(line);
    if (heading) {
      current = new Map();
      kinds.set(heading[1]!, current);
      continue;
    }
    const row = /^\| `([A-Za-z_]+)` \| ([^|]+) \| (.*) \|$/.exec(line);
    if (row && current) current.set(row[1]!, { optional: row[2]!.includes('_optional_'), meaning: row[3]! });
  }
  return kinds;
}
