// Colour follows npm's conventions: never when NO_COLOR is set (any non-empty value), always
// when FORCE_COLOR is set to anything but "0", otherwise only on a terminal that is not dumb.

export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== "") return env.FORCE_COLOR !== "0" && env.FORCE_COLOR !== "false";
  return stream.isTTY === true && env.TERM !== "dumb";
}
