// The wmb command line: registers the commands, and owns what every command shares at the
// edge: `help`, `--version`, usage errors as one line, colour only where it belongs, and a
// quiet end when the reader of stdout goes away. Layers: docs/ARCHITECTURE.md.
import { Builtins, Cli, type BaseContext, type Command, type CommandClass } from "clipanion";
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
import { PullCommand, PushCommand } from "./remote-commands.ts";
import { RemoteCheckCommand, RemoteServeCommand, StoreCopyCommand } from "./ssh-commands.ts";
import { StoreFsckCommand, StoreGcCommand, StoreStatsCommand, StoreUnlockCommand } from "./store-commands.ts";
import { KeyGenerateCommand, KeyPublicCommand } from "./key-commands.ts";
import { ServeCommand } from "./serve-command.ts";
import { wmbFile } from "../repo-root.ts";
import { groupHelp, helpRequest, notACommand } from "./help.ts";
import { colorEnabled } from "./color.ts";
import { takesManyLabels } from "./base.ts";

const COMMANDS: CommandClass<BaseContext>[] = [
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
  StoreUnlockCommand,
  GraphCommand,
  VerifyCommand,
  RunCommand,
  InspectCommand,
  BundleCommand,
  StoreImportCommand,
  PushCommand,
  PullCommand,
  StoreCopyCommand,
  RemoteCheckCommand,
  RemoteServeCommand,
  KeyGenerateCommand,
  KeyPublicCommand,
  ServeCommand,
];
const PATHS = COMMANDS.flatMap((c) => c.paths ?? []);

/** Exit code for a command line wmb cannot parse (the README's table). */
const USAGE_EXIT = 2;

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnBrokenPipe();
  // The most frequent script call answers before the parser (and its state machine) is built.
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const colored = colorEnabled(process.stdout);
  const cli = new Cli({ binaryLabel: "wmb", binaryName: "wmb", binaryVersion: version(), enableColors: colored });
  // Only the commands the first word can name: clipanion's parser is a state machine over every
  // registered path and option, and building it for all of them costs more than the parse.
  const named = COMMANDS.filter((c) => c.paths?.some((p) => p[0] === argv[0]));
  for (const c of named.length ? named : COMMANDS) cli.register(c);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  const context: BaseContext = { ...Cli.defaultContext, colorDepth: colored ? 8 : 1 };

  const help = helpRequest(argv, PATHS);
  if (help?.kind === "commands") argv = ["--help"];
  if (help?.kind === "command") argv = [...help.words, "--help"];
  if (help?.kind === "group") {
    process.stdout.write(groupHelp(cli, COMMANDS, help.words, colored));
    return 0;
  }
  if (help?.kind === "unknown") return usageError(notACommand(help.words, PATHS));

  // clipanion's parser is quadratic in positional arguments: thousands of labels are taken
  // aside here and handed to the command directly.
  const { args, labels } = takeLabelsAside(argv);
  let command: Command<BaseContext>;
  try {
    command = cli.process(args, context);
  } catch (e) {
    return usageError(parseErrorSentence(e, args));
  }
  // Built on first use: the bundle's clipanion leaves it out of contexts (bin/build-dist.mjs).
  Object.defineProperty(command.context, "stdin", { get: () => process.stdin, configurable: true });
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
    return notACommand(args.filter((a) => /^[a-z][a-z-]*$/.test(a)).slice(0, 2), PATHS);
  }
  const cmd = COMMANDS.find((c) => c.paths?.some((p) => args.slice(0, p.length).join(" ") === p.join(" ")))?.paths?.[0]?.join(" ");
  return `${message.replace(/\.$/, "")}; run \`wmb ${cmd ?? ""}${cmd ? " " : ""}--help\` for usage.`.replace("wmb --help", "wmb help");
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
