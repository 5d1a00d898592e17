// Every list of the API answers `{items, next_cursor}`; this pages through one as the person
// scrolls (or presses "Load more").
import { keepPreviousData, useInfiniteQuery, type QueryKey } from "@tanstack/react-query";
import { useEffect, useRef } from "react";

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

export function useCursorList<T>(
  key: QueryKey,
  // `signal` aborts a request nobody waits for any more (a search the next keystroke replaced).
  fetchPage: (cursor: string | undefined, signal: AbortSignal) => Promise<Page<T>>,
  options: boolean | { enabled?: boolean; keepPrevious?: boolean } = true,
) {
  // `keepPrevious`: a list whose key changes as the person types (a search) keeps showing the
  // last answer until the next one arrives, rather than flashing a spinner.
  const { enabled = true, keepPrevious = false } = typeof options === "boolean" ? { enabled: options } : options;
  const query = useInfiniteQuery({
    queryKey: key,
    queryFn: ({ pageParam, signal }) => fetchPage(pageParam, signal),
    initialPageParam: undefined as string | undefined,
    getNextPageParam: (last) => last.next_cursor ?? undefined,
    enabled,
    placeholderData: keepPrevious ? keepPreviousData : undefined,
  });
  const items = query.data?.pages.flatMap((page) => page.items) ?? [];
  return { ...query, items };
}

/** A sentinel element: when it scrolls into view, the next page loads. */
export function useLoadMoreOnView(hasMore: boolean, loadMore: () => void) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const element = ref.current;
    if (!element || !hasMore || typeof IntersectionObserver === "undefined") return;
    const observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadMore();
    }, { rootMargin: "400px" });
    observer.observe(element);
    return () => observer.disconnect();
  }, [hasMore, loadMore]);
  return ref;
}
