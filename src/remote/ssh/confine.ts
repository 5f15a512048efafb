// `wmb remote serve --confine DIR` (or WMB_REMOTE_CONFINE=DIR): every directory a client asks to
// mount (--db, --mount) must be DIR or below it. Without it a key that authorized_keys restricts
// to `command="wmb remote serve"` still lets its holder have a guest write wherever the account
// may (`--db ~/.ssh`). Paths are taken relative to DIR, `..` is refused outright, and what exists
// of a path is resolved with realpath, so a symbolic link (one a guest made, say) cannot lead out.
import { lstatSync, realpathSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, posix, relative, sep } from "node:path";
import { WmbError } from "../../errors.ts";

export interface Confinement {
  /** DIR as given, for messages */
  given: string;
  /** DIR resolved (realpath) */
  root: string;
}

/** The confinement a server was started with; a USAGE error when DIR is not a directory. */
export function confinement(dir: string): Confinement {
  let root: string;
  try {
    root = realpathSync(dir);
    if (!statSync(root).isDirectory()) throw new Error("not a directory");
  } catch {
    throw new WmbError("USAGE", `wmb remote serve --confine ${dir}: ${dir} is not a directory on this host; create it or fix the command that starts the server (e.g. authorized_keys' command=).`, { subject: dir });
  }
  return { given: dir, root };
}

/** `requested` (guest path -> host directory, as parseMounts gives it) with every host directory
 * resolved under the confinement; refuses the first that is not, by name. */
export function confineMounts(requested: ReadonlyMap<string, string>, c: Confinement): Map<string, string> {
  const out = new Map<string, string>();
  for (const [guest, host] of requested) {
    const refuse = (why: string) =>
      new WmbError("USAGE", `This host confines a machine's directories to ${c.given} (wmb remote serve --confine): the host directory ${host} for ${guest} ${why}; name a directory under ${c.given}, or a path relative to it.`, { subject: guest });
    if (host.split("/").includes("..")) throw refuse("goes up with ..");
    const path = isAbsolute(host) ? posix.normalize(host) : join(c.root, host);
    // The part of the path that exists is resolved; what does not exist yet cannot be a link.
    let existing = path;
    while (!exists(existing)) existing = dirname(existing);
    let real: string;
    try {
      real = join(realpathSync(existing), relative(existing, path));
    } catch {
      throw refuse("cannot be resolved");
    }
    if (real !== c.root && !real.startsWith(c.root + sep)) {
      const lexical = [c.root, posix.normalize(c.given)].some((r) => path === r || path.startsWith(r.replace(/\/$/, "") + sep));
      throw refuse(lexical ? "leads outside it through a symbolic link" : "is outside it");
    }
    if (existing === path && !statSync(real).isDirectory()) throw refuse("is not a directory");
    out.set(guest, real);
  }
  return out;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
