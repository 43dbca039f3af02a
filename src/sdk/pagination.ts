import type { Page } from "./types";

/**
 * Every page of a list, fetched lazily: the next page is requested only when the caller iterates
 * past the current one, following `next_cursor` until it is null.
 */
export async function* pages<T, Q extends { cursor?: string }>(
  fetchPage: (query: Q) => Promise<Page<T>>,
  query: Q,
): AsyncGenerator<Page<T>> {
  let cursor = query.cursor;
  do {
    const page = await fetchPage({ ...query, cursor });
    yield page;
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
}

/** Every item of a list, page after page. */
export async function* items<T, Q extends { cursor?: string }>(fetchPage: (query: Q) => Promise<Page<T>>, query: Q): AsyncGenerator<T> {
  for await (const page of pages(fetchPage, query)) yield* page.data;
}
