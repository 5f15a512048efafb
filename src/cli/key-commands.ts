// wmb key generate / wmb key public: Ed25519 keys in Nix's NAME:BASE64 form (src/trust/keys.ts,
// docs/TRUST.md). Only public keys are ever printed.
import { Command, Option } from "clipanion";
import { resolve } from "node:path";
import { WmbCommand } from "./base.ts";

export class KeyGenerateCommand extends WmbCommand {
  static paths = [["key", "generate"]];
  static usage = Command.Usage({
    category: "Trust",
    description: "Make an Ed25519 signing key; prints its public key as NAME:BASE64",
    details: `
      The secret key is written to --out FILE, by default $XDG_CONFIG_HOME/wmb/keys/NAME.secret
      (~/.config/wmb/keys/NAME.secret), created with mode 0600 and never over an existing file.
      It holds NAME:BASE64 of the 64-byte Ed25519 secret key, as Nix writes one. Give the printed
      public key to whoever should trust what this key signs (--trusted-key, WMB_TRUSTED_KEYS or
      wmb.json trusted_keys). See docs/TRUST.md.
    `,
    examples: [
      ["A key for CI", "$0 key generate ci-2025"],
      ["Somewhere else", "$0 key generate ci-2025 --out /run/secrets/wmb.secret"],
    ],
  });
  name = Option.String({ name: "NAME" });
  out = Option.String("--out", { description: "Where to write the secret key (default under the user's config directory)" });
  asJson = Option.Boolean("--json", false, { description: "Print { name, public_key, secret_key_file } on stdout" });

  async run(): Promise<number> {
    const { checkKeyName, defaultSecretKeyFile, generateSecretKeyFile } = await import("../trust/keys.ts");
    const name = checkKeyName(this.name);
    const file = this.out ? resolve(this.out) : defaultSecretKeyFile(name);
    const publicKey = generateSecretKeyFile(name, file);
    if (this.asJson) {
      this.json({ name, public_key: publicKey.toString(), secret_key_file: file });
      return 0;
    }
    this.context.stdout.write(`${publicKey}\n`);
    this.context.stderr.write(`secret key written to ${file} (mode 0600); share only the public key above\n`);
    return 0;
  }
}

export class KeyPublicCommand extends WmbCommand {
  static paths = [["key", "public"]];
  static usage = Command.Usage({
    category: "Trust",
    description: "Print the public key (NAME:BASE64) of a secret key file",
    details: "The file must be readable by its owner only (chmod 600), as `wmb key generate` makes it.",
    examples: [["The public key of a key", "$0 key public ~/.config/wmb/keys/ci-2025.secret"]],
  });
  file = Option.String({ name: "FILE" });
  asJson = Option.Boolean("--json", false, { description: "Print { name, public_key } on stdout" });

  async run(): Promise<number> {
    const { readSigningKey } = await import("../trust/keys.ts");
    const key = readSigningKey(resolve(this.file));
    if (this.asJson) this.json({ name: key.name, public_key: key.publicKey.toString() });
    else this.context.stdout.write(`${key.publicKey}\n`);
    return 0;
  }
}
