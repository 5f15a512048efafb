// "Did you mean …?": the candidates closest to what the user typed, by edit distance.

/** Up to `max` candidates within a distance that is plausible for a typo, closest first. */
export function nearest(typed: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(typed.length / 3));
  const scored: [string, number][] = [];
  for (const c of candidates) {
    if (Math.abs(c.length - typed.length) > limit) continue;
    const d = editDistance(typed, c, limit);
    if (d <= limit) scored.push([c, d]);
  }
  return scored
    .sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0]))
    .slice(0, max)
    .map(([c]) => c);
}

/** Levenshtein distance, giving up (returning limit + 1) once it must exceed `limit`. */
function editDistance(a: string, b: string, limit: number): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      best = Math.min(best, v);
    }
    if (best > limit) return limit + 1;
    prev = row;
  }
  return prev[b.length]!;
}
