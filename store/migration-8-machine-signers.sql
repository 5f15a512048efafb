-- Version 8: who signed a machine, as far as this store checked. A row is written only when a
-- signature verified: a pull (or run/inspect of oci://) whose trusted key signed exactly this
-- identity at exactly this index, or a push that signed it with its own key. Never an
-- unverified claim: an untrusted or bad signature leaves no row. `wmb serve` shows them.
CREATE TABLE machine_signers (
  identity    TEXT NOT NULL,             -- "blake3:<64 hex>", the machine's identity
  key_name    TEXT NOT NULL,             -- the key's NAME (the DSSE keyid)
  public_key  TEXT NOT NULL,             -- "NAME:BASE64", as trusted_keys spells it
  index_sha256 TEXT NOT NULL,            -- "sha256:<64 hex>" of the OCI index it signed
  how         TEXT NOT NULL,             -- "pull": verified at pull; "push": signed at push
  verified_at INTEGER NOT NULL,          -- ms since the epoch, the latest time it was checked
  PRIMARY KEY (identity, public_key, index_sha256, how)
);
