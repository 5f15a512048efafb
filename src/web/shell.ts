// The one HTML document every page starts from: the bundled script renders the page the URL
// names. `config` tells the script where its data is (the server's /api, or the files an
// export wrote next to it).
export interface PageConfig {
  /** "served": from a `wmb serve` process; "static": an exported directory, no server behind it. */
  mode: "served" | "static";
  /** Where the assets are, ending in "/". */
  assets: string;
  /** static: the run manifest and blobs, relative to the page. */
  machine?: { manifest: string; blobs: string; identity: string };
}

export function shellHtml(config: PageConfig, title = "wmb"): string {
  // JSON inside a script element: "<" escaped, so no value can close the element.
  const json = JSON.stringify(config).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title.replace(/[<>&"]/g, "")}</title>
<link rel="stylesheet" href="${config.assets}app.css">
<script id="wmb-config" type="application/json">${json}</script>
<script type="module" src="${config.assets}app.js"></script>
</head>
<body><div id="app"></div></body>
</html>
`;
}
