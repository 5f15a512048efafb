// Text for a terminal. What a remote says (a registry's error message, an ssh host's stderr, a
// remote wmb's failure) is printed only through this: an escape sequence in it could retitle or
// clear the terminal, move the cursor to overwrite wmb's own lines, or answer back into the
// shell (some terminals report what they are asked to), and a bare CR or backspace can forge a
// line. The guest's own stdout and stderr are not text of wmb's and pass through untouched.

// ESC followed by a control string (OSC, DCS, SOS, PM, APC, up to BEL or ST: a terminal swallows
// an unterminated one to the end, and so does this), a CSI (parameters, intermediates, final
// byte), or any other escape (intermediates, then one final byte); and the same as 8-bit C1.
const SEQUENCE = new RegExp(
  [
    String.raw`(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[\s\S]*?(?:\x07|\x1b\\|\x9c|$)`,
    String.raw`(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?`,
    String.raw`\x1b[\x20-\x2f]*[\x30-\x7e]?`,
  ].join("|"),
  "g",
);
/** C0 but tab and newline, DEL, C1. */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/g;

/** `text` without escape sequences or control characters. One line (the default): tabs and line
 * breaks (CR too) become spaces, so a remote cannot start a line of its own under wmb's
 * `error:`. With `lines`, newlines and tabs stay (a detail block) and a bare CR goes. */
export function terminalText(text: string, opts: { lines?: boolean } = {}): string {
  const plain = text.replace(SEQUENCE, "").replace(/\r\n/g, "\n");
  return (opts.lines ? plain : plain.replace(/[\t\n\r]/g, " ")).replace(CONTROL, "");
}

/** A value from outside (a registry's document, a BUILD.ts attribute) as a message quotes it:
 * JSON, at most `max` characters, and never throwing (a BigInt, a cycle or a function is not
 * JSON). A message is one sentence whatever it was given: fuzzing found 1 MiB ones. */
export function quotedValue(v: unknown, max = 80): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = typeof v === "bigint" ? `${v}n` : Object.prototype.toString.call(v);
  }
  return text.length > max ? `${text.slice(0, max - 3)}...` : text;
}
