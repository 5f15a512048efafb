// What `wmb help …` asks for, as git, npm and cargo answer it: `help` alone lists the commands,
// `help <command words>` is that command's --help, and a group's first word (`query`, `store`),
// alone, after `help` or with --help, lists the commands of the group.
import type { BaseContext, Cli, CommandClass } from "clipanion";
import { nearest } from "../nearest.ts";

export type HelpRequest =
  | { kind: "commands" }
  | { kind: "command"; words: string[] }
  | { kind: "group"; words: string[] }
  | { kind: "unknown"; words: string[] };

/** undefined when argv runs a command (clipanion answers a command's own --help). */
export function helpRequest(argv: readonly string[], paths: readonly string[][]): HelpRequest | undefined {
  if (argv.length === 0) return { kind: "commands" };
  if (argv[0] === "help") {
    const words = argv.slice(1);
    if (words.length === 0 || (words.length === 1 && words[0] === "help")) return { kind: "commands" };
    if (paths.some((p) => p.join(" ") === words.join(" "))) return { kind: "command", words };
    return isGroup(words, paths) ? { kind: "group", words } : { kind: "unknown", words };
  }
  const words = argv.filter((a) => a !== "--help" && a !== "-h");
  return argv.length - words.length <= 1 && isGroup(words, paths) ? { kind: "group", words } : undefined;
}

/** The commands under `words`, one usage line and description each, as clipanion lists them all. */
export function groupHelp(cli: Cli, commands: readonly CommandClass<BaseContext>[], words: string[], colored: boolean): string {
  const format = cli.format(colored);
  const group = words.join(" ");
  let text = `${format.bold("$ ")}wmb ${group} <command>\n`;
  for (const c of commands.filter((c) => c.paths?.some((p) => startsWith(p, words)))) {
    text += `\n  ${format.bold(cli.usage(c, { colored, prefix: "" }).trim())}\n    ${c.usage?.description ?? ""}\n`;
  }
  return `${text}\nRun \`wmb help ${group} <command>\` for one command's options.\n`;
}

/** The sentence for words that name no command: the nearest commands, and where the list is. */
export function notACommand(words: readonly string[], paths: readonly string[][]): string {
  const typed = words.join(" ");
  const names = paths.map((p) => p.join(" "));
  const near = nearest(typed, names, 2);
  if (!near.length && words.length > 1) near.push(...nearest(words[0]!, names, 2));
  const suggestion = near.length ? ` (did you mean \`wmb ${near.join("` or `wmb ")}\`?)` : "";
  const group = isGroup(words.slice(0, 1), paths) ? ` ${words[0]}` : "";
  return `"${typed}" is not a wmb command${suggestion}; run \`wmb help${group}\` for the list.`;
}

function isGroup(words: readonly string[], paths: readonly string[][]): boolean {
  return words.length > 0 && paths.some((p) => p.length > words.length && startsWith(p, words));
}

function startsWith(path: readonly string[], words: readonly string[]): boolean {
  return words.every((w, i) => path[i] === w);
}
