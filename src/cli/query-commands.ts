import { Command, Option } from "clipanion";
import { canonicalLabel } from "../label.ts";
import { expandTargetPatterns, isTargetPattern } from "../target-pattern.ts";
import { Graph } from "../graph.ts";
import { diffKeyInputs, type ActionKeyInputs } from "../keys.ts";
import { WmbError } from "../errors.ts";
import type { ActionKey } from "../digest.ts";
import { WmbCommand, type ManyLabels } from "./base.ts";

export class QueryHistoryCommand extends WmbCommand implements ManyLabels {
  static paths = [["query", "history"]];
  static usage = Command.Usage({
    category: "Query",
    description: "Every output digest a target has had, newest first, from the store's build history",
    details: "A target removed from BUILD.ts keeps its history. Patterns (//pkg:all, //pkg/..., //...) name the targets BUILD.ts declares now.",
    examples: [
      ["History of the sealed machine", "$0 query history //sqlite-cli:sealed"],
      ["History of every target of a package, as JSON", "$0 query history --json //examples:all"],
    ],
  });
  labels = Option.Rest({ required: 1, name: "labels" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  appendLabels(labels: string[]): void {
    this.labels.push(...labels);
  }

  async run(): Promise<number> {
    const store = await this.store();
    const needsWorkspace = this.labels.some(isTargetPattern);
    const graph = needsWorkspace ? new Graph((await this.loadWorkspace()).targets) : undefined;
    const labels = graph ? expandTargetPatterns(this.labels, graph.targets) : this.labels.map((l) => canonicalLabel(l));
    const all = [];
    for (const label of labels) {
      const history = store.history.targetHistory(label).map((h) => ({
        outputs: h.outputs,
        first_seen: new Date(h.firstSeen).toISOString(),
        last_seen: new Date(h.lastSeen).toISOString(),
        builds: h.builds,
        executions: h.executions,
        sandbox: h.sandbox,
      }));
      // A removed target keeps its history; a label that never existed is a typo worth naming.
      if (history.length === 0) (graph ?? new Graph((await this.loadWorkspace()).targets)).get(label);
      all.push({ label, history });
    }
    if (this.asJson) {
      this.json(all.length === 1 && !needsWorkspace ? all[0] : all);
      return 0;
    }
    for (const { label, history } of all) {
      if (all.length > 1) this.context.stdout.write(`${label}\n`);
      if (history.length === 0) {
        this.context.stdout.write(`${label} has no recorded builds in this store.\n`);
        continue;
      }
      for (const h of history) {
        this.context.stdout.write(`${h.last_seen}  (${h.builds} build${h.builds === 1 ? "" : "s"}, first ${h.first_seen}${h.sandbox ? `, sandbox ${h.sandbox}` : ""})\n`);
        for (const [p, d] of Object.entries(h.outputs)) this.context.stdout.write(`    blake3:${d}  ${p}\n`);
      }
    }
    return 0;
  }
}

abstract class GraphQuery extends WmbCommand implements ManyLabels {
  labels = Option.Rest({ required: 1, name: "labels" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  appendLabels(labels: string[]): void {
    this.labels.push(...labels);
  }

  /** The graph, and the requested labels with patterns expanded (each checked to exist). */
  async requested(): Promise<{ graph: Graph; labels: string[] }> {
    const graph = new Graph((await this.loadWorkspace()).targets);
    const labels = expandTargetPatterns(this.labels, graph.targets);
    for (const l of labels) graph.get(l);
    return { graph, labels };
  }

  print(labels: string[]): number {
    if (this.asJson) this.json(labels);
    else for (const l of labels) this.context.stdout.write(l + "\n");
    return 0;
  }
}

export class QueryDepsCommand extends GraphQuery {
  static paths = [["query", "deps"]];
  static usage = Command.Usage({
    category: "Query",
    description: "The transitive dependencies of targets (their closure), dependencies first",
    examples: [["Everything the sealed machine needs", "$0 query deps //sqlite-cli:sealed"]],
  });
  async run(): Promise<number> {
    const { graph, labels } = await this.requested();
    return this.print(graph.closure(labels).map((t) => t.label));
  }
}

export class QueryRdepsCommand extends GraphQuery {
  static paths = [["query", "rdeps"]];
  static usage = Command.Usage({
    category: "Query",
    description: "Every target that depends on the given targets, directly or not",
    examples: [["What rebuilds when the sources change", "$0 query rdeps //sqlite-cli:src"]],
  });
  async run(): Promise<number> {
    const { graph, labels } = await this.requested();
    const out = new Set<string>();
    for (const l of labels) for (const r of graph.reverseClosure(l)) out.add(r);
    return this.print([...out].sort());
  }
}

export class QueryTargetsCommand extends WmbCommand implements ManyLabels {
  static paths = [["query", "targets"]];
  static usage = Command.Usage({
    category: "Query",
    description: "Every target declared in BUILD.ts, or those the patterns name, with its rule",
    examples: [["The targets of //examples and the packages below it", "$0 query targets //examples/..."]],
  });
  patterns = Option.Rest({ name: "patterns" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  appendLabels(labels: string[]): void {
    this.patterns.push(...labels);
  }

  async run(): Promise<number> {
    const ws = await this.loadWorkspace();
    const graph = this.patterns.length ? new Graph(ws.targets) : undefined;
    const targets = graph ? expandTargetPatterns(this.patterns, ws.targets).map((l) => graph.get(l)) : ws.targets.values();
    // Only --json says where each was declared: finding that runs BUILD.ts once more with a stack
    // captured per declaration, over half of listing 20,000 targets (#27).
    if (this.asJson) this.json([...targets].map((t) => ({ label: t.label, rule: t.rule.name, outputs: t.outputs, declared_at: t.declaredAt })));
    else for (const t of targets) this.context.stdout.write(`${t.label}  (${t.rule.name})\n`);
    return 0;
  }
}

export class QueryNondeterministicCommand extends WmbCommand {
  static paths = [["query", "nondeterministic"]];
  static usage = Command.Usage({ category: "Query", description: "Actions whose one key has produced different outputs" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });
  async run(): Promise<number> {
    const list = (await this.store()).nondeterministic();
    if (this.asJson) this.json(list);
    else if (list.length === 0) this.context.stdout.write("No action has produced two different outputs for one key.\n");
    else for (const r of list) this.context.stdout.write(`${r.label}  key ${r.key.slice(0, 16)}…  ${r.results.length} different results\n`);
    return 0;
  }
}

export class WhyCommand extends WmbCommand {
  static paths = [["why"]];
  static usage = Command.Usage({
    description: "Which key input of a target changed between its last two different builds",
    examples: [["Why did the link run again?", "$0 why //sqlite-cli:wasm"]],
  });
  label = Option.String({ name: "label" });
  asJson = Option.Boolean("--json", false, { description: "JSON output" });

  async run(): Promise<number> {
    const label = canonicalLabel(this.label);
    const store = await this.store();
    const keys = store.history.recentKeys(label, 2).map((key) => ({ key }));
    if (keys.length === 0) throw new WmbError("UNKNOWN_LABEL", `${label} has never been built with this store; build it first.`, { subject: label });
    if (keys.length === 1) {
      if (this.asJson) this.json({ label, key: keys[0]!.key, changes: [] });
      else this.context.stdout.write(`${label}: its key has not changed since it was first built (${keys[0]!.key.slice(0, 16)}…).\n`);
      return 0;
    }
    const inputsOf = (key: ActionKey): ActionKeyInputs | undefined => {
      const encoded = store.keyInputsOf(key);
      return encoded === undefined ? undefined : (JSON.parse(encoded) as ActionKeyInputs);
    };
    const after = inputsOf(keys[0]!.key);
    const before = inputsOf(keys[1]!.key);
    if (!after || !before) {
      throw new WmbError("STORE", `The key inputs of ${label}'s earlier build were garbage-collected; nothing to compare.`, { subject: label });
    }
    const changes = diffKeyInputs(before, after);
    if (this.asJson) {
      this.json({ label, before: keys[1]!.key, after: keys[0]!.key, changes });
      return 0;
    }
    this.context.stdout.write(`${label} key ${keys[1]!.key.slice(0, 12)}… -> ${keys[0]!.key.slice(0, 12)}… because:\n`);
    for (const c of changes) {
      this.context.stdout.write(`  ${c.path}: ${short(c.before)} -> ${short(c.after)}\n`);
    }
    return 0;
  }
}

function short(v: unknown): string {
  if (v === undefined) return "(absent)";
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 77) + "…" : s;
}
