import { Command, Option } from "clipanion";
import * as t from "typanion";
import { expandTargetPatterns } from "../target-pattern.ts";
import { Graph } from "../graph.ts";
import { WmbCommand, type ManyLabels } from "./base.ts";

export class GraphCommand extends WmbCommand implements ManyLabels {
  static paths = [["graph"]];
  static usage = Command.Usage({
    description: "Print the target graph (a closure, or everything) as Graphviz dot or JSON",
    details: "Labels may be target patterns: //pkg:all, //pkg/... and //... (every target).",
    examples: [
      ["Render the sqlite machine's graph", "$0 graph //sqlite-cli:sealed | dot -Tsvg > graph.svg"],
      ["Every target of a package, as JSON", "$0 graph --format json //examples:all"],
    ],
  });
  labels = Option.Rest({ name: "labels" });

  appendLabels(labels: string[]): void {
    this.labels.push(...labels);
  }
  format = Option.String("--format", "dot", { description: "dot or json", validator: t.isEnum(["dot", "json"] as const) });

  async run(): Promise<number> {
    const g = new Graph((await this.loadWorkspace()).targets);
    const nodes = this.labels.length ? g.closure(expandTargetPatterns(this.labels, g.targets)) : [...g.targets.values()];
    if (this.format === "json") {
      this.json({ nodes: nodes.map((n) => ({ label: n.label, rule: n.rule.name, deps: n.deps, outputs: n.outputs })) });
      return 0;
    }
    const out = ["digraph wmb {", "  rankdir=LR;"];
    for (const n of nodes) {
      out.push(`  "${n.label}" [label="${n.label}\\n(${n.rule.name})"];`);
      for (const d of n.deps) out.push(`  "${n.label}" -> "${d}";`);
    }
    out.push("}");
    this.context.stdout.write(out.join("\n") + "\n");
    return 0;
  }
}
