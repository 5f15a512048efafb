// The wmb command line.
import { Builtins, Cli } from "clipanion";
import { BuildCommand } from "./build-command.ts";
import { GraphCommand } from "./graph-command.ts";
import {
  QueryDepsCommand,
  QueryHistoryCommand,
  QueryNondeterministicCommand,
  QueryRdepsCommand,
  QueryTargetsCommand,
  WhyCommand,
} from "./query-commands.ts";
import { VerifyCommand } from "./verify-command.ts";
import { InspectCommand, RunCommand } from "./run-command.ts";
import { BundleCommand, StoreImportCommand } from "./bundle-commands.ts";
import { StoreFsckCommand, StoreGcCommand, StoreStatsCommand } from "./store-commands.ts";

export async function main(argv: string[]): Promise<number> {
  const cli = new Cli({ binaryLabel: "wmb", binaryName: "wmb", binaryVersion: "0.1.0" });
  for (const c of [
    BuildCommand,
    QueryHistoryCommand,
    QueryDepsCommand,
    QueryRdepsCommand,
    QueryTargetsCommand,
    QueryNondeterministicCommand,
    WhyCommand,
    StoreStatsCommand,
    StoreFsckCommand,
    StoreGcCommand,
    GraphCommand,
    VerifyCommand,
    RunCommand,
    InspectCommand,
    BundleCommand,
    StoreImportCommand,
    Builtins.HelpCommand,
    Builtins.VersionCommand,
  ]) {
    cli.register(c);
  }
  return cli.run(argv, Cli.defaultContext);
}
