import { Command, Option } from "clipanion";
import * as t from "typanion";
import { canonicalLabel } from "../label.ts";
import { Graph } from "../graph.ts";
import { WmbCommand } from "./base.ts";

export class GraphCommand extends WmbCommand {
  static paths = [["graph"]];
  static usage = Command.Usage({
    description: "Print the target graph (a closure, or everything) as Graphviz dot or JSON",
    examples: [["Render the sqlite machine's graph", "$0 graph //sqlite-cli:sealed | dot -Tsvg > graph.svg"]],
  });
  labels = Option.Rest({ name: "labels" });
  format = Option.String("--format", "dot", { description: "dot or json", validator: t.isEnum(["dot", "json"] as const) });

  async run(): Promise<number> {
    const g = new Graph((await this.loadWorkspace()).targets);
    const nodes = this.labels.length ? g.closure(this.labels.map((l) => canonicalLabel(l))) : [...g.targets.values()];
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
