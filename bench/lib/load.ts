/** Load-generation helpers the HTTP benchmarks share. */

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** The value at fraction `p` (0–1) of the sorted samples (nearest rank). */
export const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(p * values.length))]!;

/** `concurrency` keep-alive clients issuing GETs for `seconds`; returns requests per second. Any non-200 aborts the run. */
export async function requestsPerSecond(
  url: string,
  headers: Record<string, string>,
  options: { seconds: number; concurrency: number },
): Promise<number> {
  const end = performance.now() + options.seconds * 1000;
  let count = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const res = await fetch(url, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${url} answered ${res.status}`);
      count++;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  return count / options.seconds;
}
