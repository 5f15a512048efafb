// Labels: `//pkg:name`, or `:name` relative to the current package.
import { WmbError } from "./errors.ts";

// A name is at most 255 characters (one path component: outputs live under it), a package 1024.
const PKG = /^(?=.{1,1024}$)[a-z0-9_][a-z0-9_.-]{0,254}(\/[a-z0-9_][a-z0-9_.-]{0,254})*$/is;
const NAME = /^[a-z0-9_][a-z0-9_.+=,@~-]{0,254}$/i;

export interface Label {
  pkg: string;
  name: string;
}

export function isLabelRef(s: string): boolean {
  return s.startsWith("//") || s.startsWith(":");
}

/** Parse a label, resolving `:name` against `currentPkg`. `//pkg` alone means `//pkg:pkg`'s last segment. */
export function parseLabel(s: string, currentPkg?: string): Label {
  let pkg: string;
  let name: string;
  if (s.startsWith(":")) {
    if (currentPkg === undefined) throw badLabel(s, "a relative label needs a package; write //pkg:name");
    pkg = currentPkg;
    name = s.slice(1);
  } else if (s.startsWith("//")) {
    const body = s.slice(2);
    const colon = body.indexOf(":");
    if (colon < 0) {
      pkg = body;
      name = body.split("/").pop() ?? "";
    } else {
      pkg = body.slice(0, colon);
      name = body.slice(colon + 1);
    }
  } else {
    throw badLabel(s, "labels look like //pkg:name or :name");
  }
  if (!PKG.test(pkg)) throw badLabel(s, `"${pkg}" is not a valid package name`);
  if (!NAME.test(name)) throw badLabel(s, `"${name}" is not a valid target name`);
  return { pkg, name };
}

export function formatLabel(l: Label): string {
  return `//${l.pkg}:${l.name}`;
}

export function canonicalLabel(s: string, currentPkg?: string): string {
  return formatLabel(parseLabel(s, currentPkg));
}

export function isValidTargetName(name: string): boolean {
  return NAME.test(name);
}

export function isValidPackageName(pkg: string): boolean {
  return PKG.test(pkg);
}

function badLabel(s: string, why: string): WmbError {
  return new WmbError("BAD_LABEL", `Invalid label "${s}": ${why}.`, { subject: s });
}
