// The wmb command line: registers the commands, and owns what every command shares at the
// edge: `help`, `--version`, usage errors as one line, colour only where it belongs, and a
// quiet end when the reader of stdout goes away. Layers: docs/ARCHITECTURE.md.
import { Builtins, Cli, type BaseContext, type Command } from "clipanion";
import { readFileSync } from "node:fs";
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
import { wmbFile } from "../repo-root.ts";
import { nearest } from "../nearest.ts";
import { colorEnabled } from "./color.ts";
import { takesManyLabels } from "./base.ts";

const COMMANDS = [
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
];

/** Exit code for a command line wmb cannot parse (the README's table). */
const USAGE_EXIT = 2;

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnBrokenPipe();
  const cli = new Cli({ binaryLabel: "wmb", binaryName: "wmb", binaryVersion: version(), enableColors: colorEnabled(process.stdout) });
  for (const c of COMMANDS) cli.register(c);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  const context: BaseContext = { ...Cli.defaultContext, colorDepth: colorEnabled(process.stdout) ? 8 : 1 };

  if (argv.length === 0) argv = ["--help"];
  if (argv[0] === "help") {
    if (argv.length === 1) argv = ["--help"];
    else {
      const words = argv.slice(1);
      if (!COMMANDS.some((c) => c.paths?.some((p) => p.join(" ") === words.join(" ")))) {
        return usageError(`"${words.join(" ")}" is not a wmb command${suggestCommand(words.join(" "))}; run \`wmb help\` for the list.`);
      }
      argv = [...words, "--help"];
    }
  }

  // clipanion's parser is quadratic in positional arguments: thousands of labels are taken
  // aside here and handed to the command directly.
  const { args, labels } = takeLabelsAside(argv);
  let command: Command<BaseContext>;
  try {
    command = cli.process(args, context);
  } catch (e) {
    return usageError(parseErrorSentence(e, args));
  }
  if (labels.length) {
    if (!takesManyLabels(command)) return usageError(`wmb ${args[0]} takes no more than one label; run \`wmb ${args[0]} --help\`.`);
    command.appendLabels(labels);
  }
  return cli.run(command, context);
}

function version(): string {
  return (JSON.parse(readFileSync(wmbFile("package.json"), "utf8")) as { version: string }).version;
}

/** Labels after the first one, before any `--` (what follows `--` belongs to a guest). */
function takeLabelsAside(argv: string[]): { args: string[]; labels: string[] } {
  if (argv.length < 64) return { args: argv, labels: [] };
  const args: string[] = [];
  const labels: string[] = [];
  let seenLabel = false;
  let guest = false;
  for (const a of argv) {
    guest ||= a === "--";
    const isLabel = !guest && (a.startsWith("//") || a.startsWith(":"));
    if (isLabel && seenLabel) labels.push(a);
    else args.push(a);
    seenLabel ||= isLabel;
  }
  return { args, labels };
}

function parseErrorSentence(e: unknown, args: string[]): string {
  const message = ((e as Error)?.message ?? String(e)).split("\n")[0]!.trim();
  if (/Command not found/i.test(message)) {
    const words = args.filter((a) => /^[a-z][a-z-]*$/.test(a));
    const typed = words.slice(0, 2).join(" ");
    return `"${typed}" is not a wmb command${suggestCommand(typed) || suggestCommand(words[0] ?? "")}; run \`wmb help\` for the list.`;
  }
  const cmd = COMMANDS.find((c) => c.paths?.some((p) => args.slice(0, p.length).join(" ") === p.join(" ")))?.paths?.[0]?.join(" ");
  return `${message.replace(/\.$/, "")}; run \`wmb ${cmd ?? ""}${cmd ? " " : ""}--help\` for usage.`.replace("wmb --help", "wmb help");
}

function suggestCommand(typed: string): string {
  const names = COMMANDS.flatMap((c) => (c.paths ?? []).map((p) => p.join(" ")));
  const near = nearest(typed, names, 2);
  return near.length ? ` (did you mean \`wmb ${near.join("` or `wmb ")}\`?)` : "";
}

function usageError(sentence: string): number {
  process.stderr.write(`error: ${sentence}\n`);
  return USAGE_EXIT;
}

/** `wmb … | head` must end quietly, as git does: exit 141 (killed by SIGPIPE, as the shell counts it). */
function endQuietlyOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(141);
      throw e;
    });
  }
}
